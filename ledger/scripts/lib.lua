-- Shared by every ledger script (prepended to each when it is loaded).
local function isFinal(s)
  return s == 'placed' or s == 'skipped' or s == 'failed' or s == 'dry_run'
    or s == 'rejected' or s == 'expired'
end
-- Redis' clock, not a worker's: every instance compares against one clock.
local function nowMs()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
-- The next token from the shared fence counter, and always above the
-- record's own: a counter that was reset or restored from an older copy
-- can never hand out a token the record has already seen.
local function nextToken(counter, recToken)
  local tok = redis.call('INCR', counter)
  if tok <= recToken then
    tok = recToken + 1
    redis.call('SET', counter, tok)
  end
  return tok
end
-- Append an event to the notification outbox (when ARGV says the outbox is
-- on: key non-empty), in the script that makes the change, so it can be
-- neither lost nor sent for a change that did not happen. The id names the
-- (event, posting) pair: a notifier delivers each id to each channel at
-- most once. Capped: a notifier gone for long loses the oldest events.
-- pushEvent appends an encoded event, keeping at most OutboxCap (Go).
local function pushEvent(outbox, e)
  redis.call('RPUSH', outbox, cjson.encode(e))
  if redis.call('LLEN', outbox) > 100000 then
    redis.call('LPOP', outbox)
  end
end
local function notify(outbox, event, mp, posting, at, fields)
  if not outbox or outbox == '' then
    return
  end
  fields.id = event .. ':' .. mp .. ':' .. posting
  fields.event, fields.marketplace, fields.posting, fields.at = event, mp, posting, at
  pushEvent(outbox, fields)
end
