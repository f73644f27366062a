-- Count one posting's bid against every window of a marketplace's bid
-- budget (this UTC hour, this UTC day), atomically and at most once per
-- posting and window.
-- KEYS[i]: the set of postings counted in window i (same hash tag, so one
--          Cluster slot)
-- ARGV[1]: the posting; then for each window i: ARGV[2i] its limit,
--          ARGV[2i+1] its key's TTL in ms
-- Returns {1, 0} when counted (now or by an earlier run for this posting),
-- or {0, i} when window i is full. Nothing is counted unless every window
-- has room, so a full day does not eat into the hour.
--
-- A set of postings, not a counter: run twice for one posting (go-redis
-- resends a script whose reply was lost; the posting's next attempt after a
-- failed bid) it counts once. Its size is bounded by the limit itself.
local posting = ARGV[1]
local counted = true
for i = 1, #KEYS do
  if redis.call('SISMEMBER', KEYS[i], posting) == 0 then
    counted = false
    if redis.call('SCARD', KEYS[i]) >= tonumber(ARGV[2 * i]) then
      return {0, i}
    end
  end
end
if counted then
  return {1, 0}
end
for i = 1, #KEYS do
  if redis.call('SADD', KEYS[i], posting) == 1 then
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i + 1])
  end
end
return {1, 0}
