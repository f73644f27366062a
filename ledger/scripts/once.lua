-- A process-level event (no posting's change: a marketplace's bid budget
-- spent, a marketplace refusing the account's token), appended to the
-- outbox KEYS[1] once per marketplace and window however many postings (on
-- however many instances) meet it. KEYS[2] marks the window (in the
-- outbox's slot; ARGV[3] its TTL, ms).
-- ARGV[1] the marketplace, ARGV[2] until (Unix ms, 0 = none), ARGV[4] the
-- window's name in the event id, ARGV[5] the event kind, ARGV[6] a reason
-- ('' = none).
-- Replies 1 when it wrote the event, 0 when it was there.
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then
  return 0
end
local e = {event = ARGV[5], marketplace = ARGV[1], at = nowMs()}
e.id = ARGV[5] .. ':' .. ARGV[1] .. ':' .. ARGV[4]
if tonumber(ARGV[2]) > 0 then
  e['until'] = tonumber(ARGV[2])
end
if ARGV[6] ~= '' then
  e.reason = ARGV[6]
end
pushEvent(KEYS[1], e)
return 1
