-- A reviewer's (or the deadline's) action on a posting in review, in one
-- script, so that two reviewers, two instances or a reviewer and the
-- deadline racing each other give one outcome.
-- KEYS[1] record, KEYS[2] open index, KEYS[3] review index, KEYS[4]
-- discovery payload, KEYS[5] audit log
-- ARGV[1] action: approve | reject | expire | close (the marketplace
-- closed the posting: expired, rule posting_closed), ARGV[2] who, ARGV[3] why,
-- ARGV[4] approved amount ('' = as proposed), ARGV[5] approved proposal
-- ('' = as proposed), ARGV[6] posting, ARGV[7] recheck (ms), ARGV[8]
-- retention (ms)
-- Returns {'ok'}, {'already', state} (this action's outcome holds already:
-- nothing changed), {'not_in_review', state}, or {'expired'} (an approval
-- came after the deadline: the posting expired instead).
local r = redis.call('HMGET', KEYS[1], 's', 'rvu', 'amt', 'txt')
local s, action = r[1], ARGV[1]
local now = nowMs()
local done = {approve = 'approved', reject = 'rejected', expire = 'expired', close = 'expired'}
if s == done[action] or (action == 'approve' and (s == 'intent' or s == 'placed') and redis.call('HEXISTS', KEYS[1], 'rvby') == 1) then
  return {'already', s}
end
if s ~= 'review' then
  return {'not_in_review', s or ''}
end
local function log(what, changes)
  local e = {at = now, action = what, by = ARGV[2], why = ARGV[3]}
  if changes then e.changes = changes end
  redis.call('RPUSH', KEYS[5], cjson.encode(e))
  redis.call('PEXPIRE', KEYS[5], ARGV[8])
end
local function close(state, rule)
  redis.call('HSET', KEYS[1], 's', state, 'at', now, 'rule', rule, 'why', ARGV[3], 'rvby', ARGV[2], 'rvat', now)
  redis.call('ZREM', KEYS[3], ARGV[6])
  redis.call('DEL', KEYS[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
end
if action == 'approve' and now >= (tonumber(r[2] or '0') or 0) then
  close('expired', 'review_deadline')
  log('expire', nil)
  return {'expired'}
end
if action == 'approve' then
  local changes = {}
  if ARGV[4] ~= '' and ARGV[4] ~= r[3] then
    changes.amount = {from = r[3] or '', to = ARGV[4]}
    redis.call('HSET', KEYS[1], 'amt', ARGV[4])
  end
  if ARGV[5] ~= '' and ARGV[5] ~= r[4] then
    changes.proposal = {from = r[4] or '', to = ARGV[5]}
    redis.call('HSET', KEYS[1], 'txt', ARGV[5])
  end
  redis.call('HSET', KEYS[1], 's', 'approved', 'rvby', ARGV[2], 'rvat', now)
  redis.call('ZREM', KEYS[3], ARGV[6])
  -- Open again, so the recovery pass sees to it that its task exists.
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), ARGV[6])
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
  if next(changes) == nil then changes = nil end
  log('approve', changes)
  return {'ok'}
end
if action == 'reject' then
  close('rejected', 'review_rejected')
elseif action == 'close' then
  close('expired', 'posting_closed')
else
  close('expired', 'review_deadline')
end
log(action, nil)
return {'ok'}
