-- Extend the lock only while it is still ours.
-- KEYS[1] lock key; ARGV[1] holder, ARGV[2] ttl (ms). Returns 1, or 0 if lost.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
