-- Bring a parked posting back: restore what it held before (an unresolved
-- intent stays one, so the next attempt reconciles before anything is
-- sent) and list it as open again. It never decides or bids anything.
-- KEYS[1] record, KEYS[2] open index, KEYS[3] parked index, KEYS[4] payload
-- ARGV[1] posting, ARGV[2] recheck (ms), ARGV[3] retention (ms)
-- Returns {'ok', payload} or {'not_parked', state}.
local r = redis.call('HMGET', KEYS[1], 's', 'ps')
if r[1] ~= 'parked' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return {'not_parked', r[1] or ''}
end
if r[2] == 'intent' or r[2] == 'approved' then
  -- An intent (a bid may exist) and a reviewer's approval both outlive
  -- the park; anything else was undecided.
  redis.call('HSET', KEYS[1], 's', r[2])
else
  redis.call('HDEL', KEYS[1], 's')
end
redis.call('HDEL', KEYS[1], 'ps', 'pat', 'prule', 'pwhy')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], nowMs() + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'ok', redis.call('GET', KEYS[4]) or ''}
