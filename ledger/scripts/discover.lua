-- Record that the scanner found a posting: its payload (so a posting whose
-- task is lost can be enqueued again) and an entry in the open index, due
-- for a check after ARGV[3]. Written in the posting's own slot, before its
-- task is enqueued. The payload has a key of its own, not a field of the
-- record: a field that large turns the record's compact listpack encoding
-- into a hashtable for good, and the record outlives the payload by weeks.
-- KEYS[1] record, KEYS[2] open index, KEYS[3] payload
-- ARGV[1] posting, ARGV[2] payload, ARGV[3] recheck (ms), ARGV[4] retention (ms)
-- Returns 'new', 'open' (known, undecided: enqueue anyway, asynq dedupes),
-- 'decided' or 'parked' (do not enqueue).
local s = redis.call('HGET', KEYS[1], 's')
if isFinal(s) then
  return 'decided'
end
if s == 'parked' then
  return 'parked'
end
local now = nowMs()
local new = redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[4])
if not new then
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
redis.call('HSETNX', KEYS[1], 'd', now)
redis.call('ZADD', KEYS[2], 'NX', now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if new and not s then
  return 'new'
end
return 'open'
