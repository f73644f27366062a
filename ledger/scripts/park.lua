-- Park a posting that cannot progress: a visible state, kept until an
-- operator resumes it, instead of a task that ends with nothing recorded.
-- Whatever the record held (an intent, so a bid may exist) is kept under
-- 'ps' for Resume to restore. A new token makes any older holder stale.
-- KEYS[1] lock, KEYS[2] fence counter, KEYS[3] record, KEYS[4] open index,
-- KEYS[5] parked index, KEYS[6] notification outbox
-- ARGV[1] the parker's lock holder ('' if it holds none), ARGV[2] rule,
-- ARGV[3] reason, ARGV[4] retention (ms), ARGV[5] posting, ARGV[6] the
-- marketplace ('' = no notifications)
-- Returns {'ok', token}, {'decided', state} or {'busy', pttl} (another
-- worker holds the lock: it is making progress, nothing is parked).
local r = redis.call('HMGET', KEYS[3], 's', 't')
local s = r[1]
if isFinal(s) then
  return {'decided', s}
end
if s == 'parked' then
  return {'ok', tonumber(r[2] or '0') or 0}
end
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return {'busy', ttl}
end
local token = nextToken(KEYS[2], tonumber(r[2] or '0') or 0)
local now = nowMs()
redis.call('HSET', KEYS[3], 's', 'parked', 'ps', s or '', 't', token, 'pat', now, 'prule', ARGV[2], 'pwhy', ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[5])
redis.call('ZADD', KEYS[5], now, ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if cur then
  redis.call('DEL', KEYS[1])
end
if ARGV[6] ~= '' then
  notify(KEYS[6], 'posting_parked', ARGV[6], ARGV[5], now, {rule = ARGV[2], reason = ARGV[3], held_intent = (s == 'intent')})
end
return {'ok', token}
