-- Delete the lock only while it is still ours: never another holder's.
-- KEYS[1] lock key; ARGV[1] holder.
-- Returns 1 (deleted), 0 (someone else holds it) or -1 (no key at all: it
-- expired, was deleted, or an earlier run of this release whose reply was
-- lost deleted it; only the caller can tell which).
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
if v then
  return 0
end
return -1
