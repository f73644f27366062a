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
