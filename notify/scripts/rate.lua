-- A fixed-window rate limit shared by every instance: KEYS[1] the
-- channel's counter, ARGV[1] sends allowed per window, ARGV[2] the window
-- (ms). Replies 0 (send now) or how many ms until the window ends.
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
if n > tonumber(ARGV[1]) then
  return ttl
end
return 0
