-- Every ledger write, fenced: refused unless the writer still holds the
-- posting's lock and no newer holder exists (the posting's fence counter, or
-- the record itself, carries a newer token), and a final record is never
-- changed. The holder check matters after a failover: a new master that
-- lost the fence counter's last increment can hand the same token out
-- twice, but never the same holder name.
-- KEYS[1] ledger record (hash), KEYS[2] the posting's fence counter,
-- KEYS[3] the posting's lock
-- ARGV[1] token
-- ARGV[2] new state: intent | placed | skipped | failed | dry_run,
--         or "" to clear an intent that is known to have placed nothing
-- ARGV[3] retention (ms); ARGV[4] the writer's lock holder name
-- ARGV[5..] field, value pairs to store
-- Returns {"ok"}, {"stale", newest token}, {"decided", state}, or
-- {"pending", token, at} for an older holder's unresolved intent.
if redis.call('GET', KEYS[3]) ~= ARGV[4] then
  return {'stale', 'lock not held'}
end
local token = tonumber(ARGV[1])
local fence = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local rec = redis.call('HMGET', KEYS[1], 's', 't')
local state, recToken = rec[1], tonumber(rec[2] or '0') or 0
if token < fence or token < recToken then
  return {'stale', tostring(math.max(fence, recToken))}
end
if state == 'placed' or state == 'skipped' or state == 'failed' or state == 'dry_run' then
  return {'decided', state}
end
if ARGV[2] == '' then
  -- Ours, or an older holder's that reconciliation proved placed no bid.
  if state == 'intent' then
    redis.call('DEL', KEYS[1])
  end
  return {'ok'}
end
-- An older holder's intent means a bid may exist: only "placed" (found by
-- reconciliation) may replace it; anything else must reconcile first.
if state == 'intent' and recToken < token and ARGV[2] ~= 'placed' then
  return {'pending', tostring(recToken), redis.call('HGET', KEYS[1], 'at') or '0'}
end
-- Redis' clock, not the worker's: every instance compares against one clock.
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
-- No DEL first: a later state's fields overwrite the intent's, and the
-- intent's worker (w) staying on a failed record only helps debugging.
redis.call('HSET', KEYS[1], 's', ARGV[2], 't', ARGV[1], 'at', now, unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'ok'}
