-- Take one bid from a marketplace's hourly and daily budget, atomically.
-- KEYS[1]: this UTC hour's counter, KEYS[2]: this UTC day's counter
--          (same hash tag, so one Cluster slot).
-- ARGV[1]: per-hour limit, ARGV[2]: per-day limit (0 = unlimited)
-- ARGV[3]: hour key TTL in ms, ARGV[4]: day key TTL in ms
-- Returns {1, 0} when taken; {0, 2} when the day is full; {0, 1} when the
-- hour is full. Neither counter moves unless both have room, so a full day
-- does not eat into the hour and vice versa.
local perHour = tonumber(ARGV[1])
local perDay = tonumber(ARGV[2])
local h = tonumber(redis.call('GET', KEYS[1]) or '0')
local d = tonumber(redis.call('GET', KEYS[2]) or '0')
-- The day first: its retry time is the later one, so the caller waits once.
if perDay > 0 and d >= perDay then
  return {0, 2}
end
if perHour > 0 and h >= perHour then
  return {0, 1}
end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {1, 0}
