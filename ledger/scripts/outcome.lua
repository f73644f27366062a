-- Record what became of a placed bid (the tracker's poll, a retract), kept
-- apart from the decision: the record stays 'placed' (final: the pipeline
-- never bids on it again) and gains 'o' (outcome) and 'oa' (since when),
-- with every change appended to the posting's audit log.
-- KEYS[1] record, KEYS[2] placed index, KEYS[3] audit log
-- ARGV[1] posting, ARGV[2] the bid's id (must be the record's), ARGV[3]
-- outcome: pending | awarded | rejected | retracted | no_answer,
-- ARGV[4] when it changed (Redis ms; 0 = now), ARGV[5] next poll (ms from
-- now; '' = stop polling), ARGV[6] by, ARGV[7] the marketplace's words,
-- ARGV[8] retention (ms)
-- Returns {'changed', old}, {'same', current} or {'gone', state} (no placed
-- record with that bid: it expired, or the index entry was stale).
-- A decided outcome (awarded, rejected, retracted) is not undone by a later
-- 'pending' or 'no_answer' (a marketplace's cache lagging our own retract);
-- one decided outcome may follow another (an award retracted).
-- Safe to run twice: the second run finds its outcome and reports 'same'.
local r = redis.call('HMGET', KEYS[1], 's', 'b', 'o')
local want, old = ARGV[3], r[3] or 'pending'
local function reschedule()
  if ARGV[5] == '' then
    redis.call('ZREM', KEYS[2], ARGV[1])
  else
    redis.call('ZADD', KEYS[2], nowMs() + tonumber(ARGV[5]), ARGV[1])
  end
end
if r[1] ~= 'placed' or r[2] ~= ARGV[2] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'gone', r[1] or ''}
end
local decided = {awarded = true, rejected = true, retracted = true}
if want == old or (decided[old] and not decided[want]) then
  if decided[old] then
    redis.call('ZREM', KEYS[2], ARGV[1])
  else
    reschedule()
  end
  return {'same', old}
end
local now = nowMs()
local at = tonumber(ARGV[4])
if not at or at <= 0 or at > now then
  at = now
end
redis.call('HSET', KEYS[1], 'o', want, 'oa', at)
local e = {at = now, action = 'outcome', outcome = want, since = at, by = ARGV[6]}
if ARGV[7] ~= '' then e.why = ARGV[7] end
redis.call('RPUSH', KEYS[3], cjson.encode(e))
redis.call('PEXPIRE', KEYS[3], ARGV[8])
if decided[want] or want == 'no_answer' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  reschedule()
end
return {'changed', old}
