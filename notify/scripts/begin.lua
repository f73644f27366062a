-- Start a delivery: KEYS[1] the delivery key, ARGV[1] its TTL (ms),
-- ARGV[2] '1' for an idempotent channel, ARGV[3] this run's token.
-- Replies 'new' (send), 'sent' or 'unknown' (do not send), 'attempt' (a
-- run that is not this one may have sent). For a channel that is not
-- idempotent an earlier attempt becomes 'unknown' here, in the same step
-- that reports it, so it is counted once and never sent.
local v = redis.call('GET', KEYS[1])
if v == 'sent' or v == 'unknown' then
  return v
end
local mine = 'attempt:' .. ARGV[3]
-- Our own earlier run (its reply lost and the script sent again).
if v == mine then
  return 'new'
end
if v then
  if ARGV[2] == '1' then
    redis.call('SET', KEYS[1], mine, 'PX', ARGV[1])
  else
    redis.call('SET', KEYS[1], 'unknown', 'PX', ARGV[1])
  end
  return 'attempt'
end
redis.call('SET', KEYS[1], mine, 'PX', ARGV[1])
return 'new'
