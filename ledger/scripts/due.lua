-- Take the open postings whose check is due (score <= now) and push their
-- next check ARGV[2] ms ahead, so concurrent passes do not all take them.
-- KEYS[1] open index; ARGV[1] limit, ARGV[2] recheck (ms)
-- Returns the postings.
local now = nowMs()
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, ARGV[1])
local next = now + tonumber(ARGV[2])
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', next, m)
end
return due
