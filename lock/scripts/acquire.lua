-- Take the lock and hand out its fencing token in one step, so no holder can
-- ever exist without a token newer than every earlier holder's.
-- KEYS[1] lock key, KEYS[2] fence counter (shared by the postings of a node,
-- or of a Cluster slot; it never expires)
-- ARGV[1] holder, ARGV[2] ttl (ms)
-- Returns the token, or the lock's remaining ttl (ms) as a negative number
-- when someone else holds it (so a waiter need not sleep past the expiry).
-- Not safe to run twice for one holder (the second run finds the key taken):
-- the Manager sends it with client retries off.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then ttl = 1 end
return -ttl
