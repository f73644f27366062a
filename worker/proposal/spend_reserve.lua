-- Reserve tokens of a marketplace's hourly and daily proposal budget for one
-- model call, atomically, at most once per request.
-- KEYS[1]: this UTC hour's counter, KEYS[2]: this UTC day's counter,
-- KEYS[3]: the request's reservation (same hash tag: one Cluster slot).
-- ARGV[1]: tokens per hour, ARGV[2]: tokens per day (0 = unlimited),
-- ARGV[3]: tokens to reserve, ARGV[4]: hour TTL ms, ARGV[5]: day TTL ms,
-- ARGV[6]: reservation TTL ms.
-- Returns {1, 0} reserved (or reserved already: a second run of this script
-- for the same request spends nothing); {0, 2} the day has no room; {0, 1}
-- the hour has no room. Neither counter moves unless both have room.
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {1, 0}
end
local perHour = tonumber(ARGV[1])
local perDay = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local h = tonumber(redis.call('GET', KEYS[1]) or '0')
local d = tonumber(redis.call('GET', KEYS[2]) or '0')
-- The day first: its retry time is the later one, so the caller waits once.
if perDay > 0 and d + n > perDay then
  return {0, 2}
end
if perHour > 0 and h + n > perHour then
  return {0, 1}
end
redis.call('INCRBY', KEYS[1], n)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('INCRBY', KEYS[2], n)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[3], n, 'PX', ARGV[6])
return {1, 0}
