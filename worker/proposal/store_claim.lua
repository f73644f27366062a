-- Store a posting's proposal unless one is stored already, and return the
-- one that is stored now: the first writer wins, every other gets its text.
-- KEYS[1]: the posting's proposal. ARGV[1]: the encoded proposal,
-- ARGV[2]: retention in ms.
local v = redis.call('GET', KEYS[1])
if v then
  return v
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
