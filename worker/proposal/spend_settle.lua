-- Settle one request's reservation to the tokens it really used, at most
-- once: the counters move by (used - reserved), and the reservation is
-- marked settled so a second run changes nothing.
-- KEYS[1]: the hour counter, KEYS[2]: the day counter the reservation was
-- taken from, KEYS[3]: the reservation. ARGV[1]: tokens used.
-- Returns {1, delta} settled now; {2, 0} settled before; {0, 0} no such
-- reservation (expired, or never made).
local r = redis.call('GET', KEYS[3])
if not r then
  return {0, 0}
end
if string.sub(r, 1, 1) == 's' then
  return {2, 0}
end
local delta = tonumber(ARGV[1]) - tonumber(r)
if delta ~= 0 then
  for i = 1, 2 do
    -- A counter whose window has expired is gone; recreating it would
    -- start a window without a TTL.
    if redis.call('EXISTS', KEYS[i]) == 1 then
      local v = redis.call('INCRBY', KEYS[i], delta)
      if v < 0 then
        redis.call('INCRBY', KEYS[i], -v)
      end
    end
  end
end
redis.call('SET', KEYS[3], 's' .. ARGV[1], 'KEEPTTL')
return {1, delta}
