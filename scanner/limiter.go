package scanner

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rate is a marketplace's request pace, shared by every instance because the
// marketplace counts requests per account, not per process.
type Rate struct {
	PerSecond float64 // <= 0: no pacing (429 pauses still apply)
	Burst     int     // requests allowed back to back after idling; < 1 means 1
}

// gcraLua is GCRA (the "generic cell rate algorithm" behind redis-cell and
// redis_rate) over one key holding the theoretical arrival time (TAT) in
// microseconds of Redis' own clock, so instances with skewed clocks still
// share one pace. It reserves: a caller told to wait w owns the slot at
// now+w, so waiters queue up instead of stampeding. "pause" pushes the TAT
// out to honour a marketplace's Retry-After for every instance at once.
//
// Numbers are written with %.0f because Lua 5.1's tostring keeps only 14
// significant digits, which would round microsecond timestamps.
const gcraLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
if ARGV[1] == 'pause' then
  local untl = now + tonumber(ARGV[4]) + tolerance
  if untl > tat then tat = untl end
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  return 0
end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[4]) then
  return -wait - 1
end
local newtat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', newtat), 'PX', math.floor((newtat - now) / 1000) + 1000)
return wait
`

// limiter is the Redis-backed shared pace of marketplace requests.
type limiter struct {
	rdb    redis.UniversalClient
	script *redis.Script
	prefix string
}

func newLimiter(rdb redis.UniversalClient, prefix string) *limiter {
	return &limiter{rdb: rdb, script: redis.NewScript(gcraLua), prefix: prefix}
}

func (l *limiter) key(marketplaceID string) string { return l.prefix + ":" + marketplaceID }

func (r Rate) params() (interval, tolerance int64) {
	if r.PerSecond <= 0 || math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) {
		return 0, 0
	}
	interval = int64(math.Ceil(1e6 / r.PerSecond))
	burst := max(r.Burst, 1)
	return interval, interval * int64(burst-1)
}

// reserve takes the next request slot of the marketplace if it comes within
// maxWait, and says how long to wait for it. ok=false means it would take
// longer (nothing was reserved); wait is then the time it would have taken.
func (l *limiter) reserve(ctx context.Context, marketplaceID string, r Rate, maxWait time.Duration) (wait time.Duration, ok bool, err error) {
	interval, tolerance := r.params()
	n, err := l.script.Run(ctx, l.rdb, []string{l.key(marketplaceID)},
		"take", interval, tolerance, strconv.FormatInt(max(maxWait.Microseconds(), 0), 10)).Int64()
	if err != nil {
		return 0, false, fmt.Errorf("scanner: rate limiter %s: %w", marketplaceID, err)
	}
	if n < 0 {
		return time.Duration(-n-1) * time.Microsecond, false, nil
	}
	return time.Duration(n) * time.Microsecond, true, nil
}

// pause keeps every instance from calling the marketplace for d.
func (l *limiter) pause(ctx context.Context, marketplaceID string, r Rate, d time.Duration) error {
	interval, tolerance := r.params()
	if err := l.script.Run(ctx, l.rdb, []string{l.key(marketplaceID)},
		"pause", interval, tolerance, strconv.FormatInt(d.Microseconds(), 10)).Err(); err != nil {
		return fmt.Errorf("scanner: rate limiter pause %s: %w", marketplaceID, err)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
