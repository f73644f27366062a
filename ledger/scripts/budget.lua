-- A marketplace's bid budget is spent until ARGV[2] (Unix ms): append one
-- budget_spent event to the outbox KEYS[1], once per window however many
-- postings (on however many instances) meet the spent window. KEYS[2] marks
-- the window (in the outbox's slot; ARGV[3] its TTL, ms); ARGV[1] the
-- marketplace, ARGV[4] the window's name in the event id (its end, Unix
-- seconds). Replies 1 when it wrote the event, 0 when it was there.
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then
  return 0
end
local e = {event = 'budget_spent', marketplace = ARGV[1], at = nowMs()}
e.id = 'budget_spent:' .. ARGV[1] .. ':' .. ARGV[4]
e['until'] = tonumber(ARGV[2])
redis.call('RPUSH', KEYS[1], cjson.encode(e))
if redis.call('LLEN', KEYS[1]) > 100000 then
  redis.call('LPOP', KEYS[1])
end
return 1
