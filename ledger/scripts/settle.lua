-- Record what became of a claimed posting, and (optionally) release its
-- lock, in one round trip. Refused unless the writer still holds the lock
-- and no newer acquisition exists; a final record never changes; an
-- earlier attempt's intent is only replaced by the holder that reconciled
-- it (ARGV[4]).
-- KEYS[1] lock, KEYS[2] record, KEYS[3] open index, KEYS[4] discovery payload,
-- KEYS[5] notification outbox, KEYS[6] placed index (bids whose outcome
-- the tracker polls), KEYS[7] bids index (every placed bid by time, for
-- reports), KEYS[8] (optional) a hash whose 'result' field gets a final
-- outcome (the asynq task's)
-- ARGV[1] holder, ARGV[2] token,
-- ARGV[3] state: placed | failed | '' (nothing was placed: undecided again)
--         | intent (take over a reconciled earlier intent, to bid now)
-- ARGV[4] holder of the earlier intent this resolves, or ''
-- ARGV[5] '1' to delete the lock, ARGV[6] retention (ms), ARGV[7] posting,
-- ARGV[8] settle (ms, for an intent), ARGV[9] the result for KEYS[8],
-- ARGV[10] the marketplace ('' = no notifications), ARGV[11] placed: when
-- the tracker first asks for its outcome (ms from now; '' = not tracked),
-- ARGV[12..] field pairs to store
-- Returns {'ok'}, {'stale', why}, {'decided', state}, {'pending', holder, token, at}
-- Safe to run twice: a run that finds its own write reports ok.
local holder, want = ARGV[1], ARGV[3]
local r = redis.call('HMGET', KEYS[2], 's', 'h', 't', 'at', 'w', 'd', 'rvby')
local s, h = r[1], r[2] or r[5]
local t = tonumber(r[3] or '0') or 0
local release = ARGV[5] == '1'

-- What "undecided again" means for this record: none, or, for a bid a
-- reviewer approved, approved still (the retry sends the approved bid; it
-- does not ask the rules, or a reviewer, again).
local undecided = nil
if r[7] then
  undecided = 'approved'
end

-- (A missing field is false in Lua, not nil.)
local isUndecided = (undecided and s == undecided) or (not undecided and not s)
if h == holder and (s == want or (want == '' and isUndecided)) then
  if release and redis.call('GET', KEYS[1]) == holder then
    redis.call('DEL', KEYS[1])
  end
  return {'ok'}
end
if redis.call('GET', KEYS[1]) ~= holder then
  return {'stale', 'lock not held'}
end
if tonumber(ARGV[2]) < t then
  return {'stale', tostring(t)}
end
if isFinal(s) then
  return {'decided', s}
end
if s == 'intent' and h ~= holder and h ~= ARGV[4] then
  return {'pending', h or '', t, tonumber(r[4] or '0') or 0}
end

local now = nowMs()
if want == '' then
  redis.call('HDEL', KEYS[2], 'sa', 'w')
  if undecided then
    redis.call('HSET', KEYS[2], 's', undecided, 'h', holder, 't', ARGV[2], 'at', now)
  else
    redis.call('HDEL', KEYS[2], 's')
    redis.call('HSET', KEYS[2], 'h', holder, 't', ARGV[2], 'at', now)
  end
else
  redis.call('HSET', KEYS[2], 's', want, 'h', holder, 't', ARGV[2], 'at', now, unpack(ARGV, 12))
  if want == 'intent' then
    redis.call('HSET', KEYS[2], 'sa', now + tonumber(ARGV[8]))
  else
    redis.call('HDEL', KEYS[2], 'd', 'sa', 'w')
    if r[6] then
      -- Discovered by a scan: its payload and open-index entry go with
      -- the decision.
      redis.call('DEL', KEYS[4])
      redis.call('ZREM', KEYS[3], ARGV[7])
    end
    if KEYS[8] then
      redis.call('HSET', KEYS[8], 'result', ARGV[9])
    end
    if want == 'placed' then
      -- Kept as long as records are; trimmed here, where it grows.
      redis.call('ZADD', KEYS[7], now, ARGV[7])
      redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - tonumber(ARGV[6]))
      if ARGV[11] ~= '' then
        redis.call('ZADD', KEYS[6], now + tonumber(ARGV[11]), ARGV[7])
      end
      if ARGV[10] ~= '' then
        -- pairs: b, amt, cur
        notify(KEYS[5], 'bid_placed', ARGV[10], ARGV[7], now, {bid_id = ARGV[13], amount = ARGV[15], currency = ARGV[17]})
      end
    end
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if release then
  redis.call('DEL', KEYS[1])
end
return {'ok'}
