-- Claim a posting for a decision, in one round trip: check its record, take
-- its lock and a fencing token, and record the decision. A skip (or dry
-- run) is final at once and leaves no lock; a bid leaves the lock held and
-- an intent recorded, for the caller to send the bid and Settle it.
-- KEYS[1] lock, KEYS[2] fence counter, KEYS[3] record, KEYS[4] open index,
-- KEYS[5] the posting's discovery payload, KEYS[6] review index, KEYS[7]
-- audit log, KEYS[8] notification outbox, KEYS[9] (optional) a hash whose
-- 'result' field gets the final decision (the asynq task's)
-- ARGV[1] holder (new for every claim), ARGV[2] lock ttl (ms),
-- ARGV[3] retention (ms), ARGV[4] posting (index member),
-- ARGV[5] settle (ms): how long after an intent none of its requests can
--         still be in flight (for an intent that does not say, and stored
--         with this one's)
-- ARGV[6] decision: intent | skipped | dry_run | review; ARGV[7] the result
-- for KEYS[9]; ARGV[8] review: its deadline (Redis ms); ARGV[9] the
-- marketplace ('' = no notifications); ARGV[10] an intent's account, where
-- the marketplace has several ('' = it has one): whoever reconciles the
-- intent asks that account; ARGV[11..] the decision's field pairs
-- Returns
--   {'intent', token[, amt, cur, txt]}       lock held, intent recorded: send
--                                            (with a reviewer's approved bid)
--   {'review', until}                        in review: waits for a human
--   {'final', state, token}                  skipped / dry_run recorded
--   {'pending', token, holder, rtoken, at, account[, amt, cur, txt]}
--                                            lock held; an earlier attempt's
--                                            intent has settled: reconcile
--   {'settling', ms, holder}                 an earlier attempt's request may
--                                            still be in flight: wait ms
--   {'decided', state}  {'busy', pttl}  {'parked', rule}
-- Safe to run twice with the same holder (go-redis resends a script whose
-- reply was lost): the second run reports what the first did.
local holder = ARGV[1]
local cur = redis.call('GET', KEYS[1])
local r = redis.call('HMGET', KEYS[3], 's', 'h', 't', 'at', 'sa', 'w', 'prule', 'd', 'rvby', 'amt', 'cur', 'txt', 'rvu', 'ac')
local s, h = r[1], r[2] or r[6]
local t = tonumber(r[3] or '0') or 0
-- A claim of a bid a reviewer approved carries the approved bid.
local function approved(reply)
  if r[9] then
    table.insert(reply, r[10] or '')
    table.insert(reply, r[11] or '')
    table.insert(reply, r[12] or '')
  end
  return reply
end
local function intentReply(token)
  return approved({'intent', token})
end

if isFinal(s) then
  if h == holder then
    return {'final', s, t}
  end
  return {'decided', s}
end
if cur == holder then
  -- An earlier run of this claim took the lock.
  if s == 'intent' and h == holder then
    return intentReply(t)
  end
  -- It found an earlier attempt's intent. Its token never reached the
  -- caller; a new one is as good.
  return approved({'pending', nextToken(KEYS[2], t), h or '', t, tonumber(r[4] or '0') or 0, r[14] or ''})
end
if cur then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return {'busy', ttl}
end
if s == 'parked' then
  return {'parked', r[7] or ''}
end
if s == 'review' then
  return {'review', tonumber(r[13] or '0') or 0}
end

local now = nowMs()
local settle = tonumber(ARGV[5])
if s == 'intent' then
  -- Another acquisition's intent: a bid may exist. Only once no request of
  -- it can still be in flight may the marketplace's "no bid" be believed.
  local ready = tonumber(r[5] or '0') or 0
  if ready == 0 then
    ready = (tonumber(r[4] or '0') or 0) + settle
  end
  if now < ready then
    return {'settling', ready - now, h or ''}
  end
  redis.call('SET', KEYS[1], holder, 'PX', ARGV[2])
  return approved({'pending', nextToken(KEYS[2], t), h or '', t, tonumber(r[4] or '0') or 0, r[14] or ''})
end

local token = nextToken(KEYS[2], t)
local d = ARGV[6]
if s == 'approved' then
  -- A reviewer approved this bid: it goes out, whatever the rules say now.
  d = 'intent'
end
if d == 'review' then
  redis.call('HSET', KEYS[3], 's', 'review', 'h', holder, 't', token, 'at', now, 'rvu', ARGV[8], unpack(ARGV, 11))
  redis.call('ZREM', KEYS[4], ARGV[4])
  redis.call('ZADD', KEYS[6], ARGV[8], ARGV[4])
  -- The decision's pairs end with its reason ('why').
  redis.call('RPUSH', KEYS[7], cjson.encode({at = now, action = 'review', by = 'rules', why = ARGV[#ARGV]}))
  redis.call('PEXPIRE', KEYS[7], ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
  if ARGV[9] ~= '' then
    notify(KEYS[8], 'review_needed', ARGV[9], ARGV[4], now,
      {amount = ARGV[12], currency = ARGV[14], ['until'] = tonumber(ARGV[8]), reason = ARGV[#ARGV]})
  end
  return {'review', tonumber(ARGV[8])}
end
if d == 'intent' then
  redis.call('SET', KEYS[1], holder, 'PX', ARGV[2])
  redis.call('HSET', KEYS[3], 's', 'intent', 'h', holder, 't', token, 'at', now, 'sa', now + settle)
  if ARGV[10] ~= '' then
    redis.call('HSET', KEYS[3], 'ac', ARGV[10])
  elseif r[14] then
    redis.call('HDEL', KEYS[3], 'ac') -- an earlier intent's
  end
  if r[6] then
    redis.call('HDEL', KEYS[3], 'w') -- an older version's holder field
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
  return intentReply(token)
end
-- A final decision needs no lock: this script is the whole critical
-- section, and the new token makes any older holder's later write stale.
redis.call('HSET', KEYS[3], 's', d, 'h', holder, 't', token, 'at', now, unpack(ARGV, 11))
redis.call('HDEL', KEYS[3], 'd', 'sa', 'w')
if r[8] then
  -- Discovered by a scan: its payload and open-index entry go with the
  -- decision.
  redis.call('DEL', KEYS[5])
  redis.call('ZREM', KEYS[4], ARGV[4])
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
if KEYS[9] then
  redis.call('HSET', KEYS[9], 'result', ARGV[7])
end
return {'final', d, token}
