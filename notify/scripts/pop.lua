-- Remove from the outbox KEYS[1] the entries a sweep read from its head
-- (ARGV, in order) and enqueued, and nothing else. The ledger's cap may
-- have popped some of them meanwhile (the head is then one of them, further
-- on), and writers only append, so what is removed is the run from the
-- head that matches what was read, entry by entry. Replies how many.
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then
  return 0
end
local k
for i = 1, #ARGV do
  if ARGV[i] == head then
    k = i
    break
  end
end
if not k then
  return 0 -- all of them gone already
end
local cur = redis.call('LRANGE', KEYS[1], 0, #ARGV - k)
local m = 0
for j = 1, #cur do
  if cur[j] ~= ARGV[k + j - 1] then
    break
  end
  m = j
end
if m > 0 then
  redis.call('LTRIM', KEYS[1], m, -1)
end
return m
