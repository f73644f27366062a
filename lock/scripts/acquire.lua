-- Take the lock and hand out its fencing token in one step, so no holder can
-- ever exist without a token newer than every earlier holder's.
-- KEYS[1] lock key, KEYS[2] fence counter
-- ARGV[1] holder, ARGV[2] ttl (ms), ARGV[3] fence retention (ms)
-- Returns the token, or the lock's remaining ttl (ms) as a negative number
-- when someone else holds it (so a waiter need not sleep past the expiry).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return token
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then ttl = 1 end
return -ttl
