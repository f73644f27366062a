package rules

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed budget.lua
var takeLua string

// takeScript is immutable; Run loads it by SHA and falls back to EVAL.
var takeScript = redis.NewScript(takeLua)

// DefaultBudgetPrefix is used when NewBudget gets an empty prefix.
const DefaultBudgetPrefix = "bid_budget"

// budgetGrace keeps a counter alive past its window (see Windows.TTLs).
const budgetGrace = time.Hour

var (
	// ErrBudgetUnavailable wraps every Redis failure of Take: the budget
	// could not be checked, so the caller must not bid (fail closed), and
	// may retry later.
	ErrBudgetUnavailable = errors.New("bid budget unavailable")
	// ErrInvalidBudget: the Budget or the marketplace ID cannot be used;
	// retrying will not help.
	ErrInvalidBudget = errors.New("invalid bid budget")
)

// Budget caps the bids all instances together place per marketplace per
// UTC hour, UTC day and week (Monday 00:00 UTC), with counters in Redis.
type Budget struct {
	rdb      redis.UniversalClient
	prefix   string
	perHour  int
	perDay   int
	perWeek  int
	perMonth int
}

// BudgetOption configures a Budget.
type BudgetOption func(*Budget)

// PerWeek caps the bids per week, Monday 00:00 UTC to the next (0 =
// unlimited, the default).
func PerWeek(n int) BudgetOption { return func(b *Budget) { b.perWeek = n } }

// PerMonth caps the bids per calendar month, the 1st 00:00 UTC to the next
// (0 = unlimited, the default): a marketplace's own quota, such as the bids
// a Freelancer plan grants each month.
func PerMonth(n int) BudgetOption { return func(b *Budget) { b.perMonth = n } }

// NewBudget returns a Budget allowing perHour bids per UTC hour and perDay
// per UTC day for each marketplace (0 = unlimited). Keys are sets of the
// postings counted in a window, <keyPrefix>:{<marketplace>}:hs:<unix hour>
// and ...:ds:<unix day>; the braces are a Cluster hash tag so both keys
// live in one slot and one script can check them together. Bad arguments surface as ErrInvalidBudget from Take,
// so that a misconfigured budget fails closed rather than unlimited.
func NewBudget(rdb redis.UniversalClient, keyPrefix string, perHour, perDay int, opts ...BudgetOption) *Budget {
	if keyPrefix == "" {
		keyPrefix = DefaultBudgetPrefix
	}
	b := &Budget{rdb: rdb, prefix: keyPrefix, perHour: perHour, perDay: perDay}
	for _, o := range opts {
		o(b)
	}
	return b
}

func (b *Budget) check(marketplaceID string) error {
	switch {
	case b == nil || b.rdb == nil:
		return fmt.Errorf("%w: no Redis client", ErrInvalidBudget)
	case b.perHour < 0 || b.perDay < 0 || b.perWeek < 0 || b.perMonth < 0:
		return fmt.Errorf("%w: limits must be >= 0, got per hour %d, per day %d, per week %d, per month %d",
			ErrInvalidBudget, b.perHour, b.perDay, b.perWeek, b.perMonth)
	}
	if err := CheckWindowKeys(b.prefix, marketplaceID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBudget, err)
	}
	return nil
}

// Keys returns the hour and day keys Take uses at now (sets of the postings
// counted in each window); for operators and tests.
func (b *Budget) Keys(marketplaceID string, now time.Time) (hourKey, dayKey string) {
	// Sets, not the counters WindowsAt names ("h:", "d:"): a counter left
	// by an older version must not be read as a set.
	w := WindowsAt(b.prefix, marketplaceID, now)
	return w.Base + "hs:" + strconv.FormatInt(now.Unix()/3600, 10), w.Base + "ds:" + strconv.FormatInt(now.Unix()/86400, 10)
}

// Weeks run from Monday 00:00 UTC; the Unix epoch was a Thursday.
const (
	weekSeconds  = 7 * 86400
	mondayOffset = 3 * 86400
)

// window is one budget window at a moment: its key, limit and end.
type window struct {
	key   string
	limit int
	end   time.Time
	ttl   int64 // ms: to the end, plus grace
}

func (b *Budget) windows(marketplaceID string, now time.Time) []window {
	w := WindowsAt(b.prefix, marketplaceID, now)
	hourKey, dayKey := b.Keys(marketplaceID, now)
	hourTTL, dayTTL := w.TTLs(now, budgetGrace)
	// The longest window first: its retry time is the latest, so a caller
	// stopped by several waits once. An unlimited window is not tracked.
	var ws []window
	if b.perMonth > 0 {
		y, m, _ := now.UTC().Date()
		end := time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
		ws = append(ws, window{fmt.Sprintf("%sms:%04d%02d", w.Base, y, m), b.perMonth, end, (end.Sub(now) + budgetGrace).Milliseconds()})
	}
	if b.perWeek > 0 {
		week := (now.Unix() + mondayOffset) / weekSeconds
		end := time.Unix((week+1)*weekSeconds-mondayOffset, 0).UTC()
		ws = append(ws, window{w.Base + "ws:" + strconv.FormatInt(week, 10), b.perWeek, end, (end.Sub(now) + budgetGrace).Milliseconds()})
	}
	if b.perDay > 0 {
		ws = append(ws, window{dayKey, b.perDay, w.DayEnd, dayTTL})
	}
	if b.perHour > 0 {
		ws = append(ws, window{hourKey, b.perHour, w.HourEnd, hourTTL})
	}
	return ws
}

// Take counts posting's bid against marketplaceID's budget at wall-clock
// time now, or reports that a window is spent and when the next one opens
// (retryAt). Every window is checked and counted in one script, so
// concurrent callers on any number of instances never overspend, and a
// posting counts once per window however often Take runs for it (a retry
// after a failed bid, a script resent by the client). Any Redis error
// returns ok=false and an error matching ErrBudgetUnavailable.
func (b *Budget) Take(ctx context.Context, marketplaceID, postingID string, now time.Time) (ok bool, retryAt time.Time, err error) {
	if err := b.check(marketplaceID); err != nil {
		return false, time.Time{}, err
	}
	ws := b.windows(marketplaceID, now)
	if len(ws) == 0 {
		return true, time.Time{}, nil
	}
	keys := make([]string, len(ws))
	args := make([]any, 0, 1+2*len(ws))
	args = append(args, postingID)
	for i, w := range ws {
		keys[i] = w.key
		args = append(args, w.limit, w.ttl)
	}
	res, err := takeScript.Run(ctx, b.rdb, keys, args...).Int64Slice()
	if err != nil {
		return false, time.Time{}, fmt.Errorf("%w: take for %q: %w", ErrBudgetUnavailable, marketplaceID, err)
	}
	switch {
	case len(res) != 2:
	case res[0] == 1:
		return true, time.Time{}, nil
	case res[1] >= 1 && int(res[1]) <= len(ws):
		return false, ws[res[1]-1].end, nil
	}
	return false, time.Time{}, fmt.Errorf("%w: take for %q: unexpected script reply %v", ErrBudgetUnavailable, marketplaceID, res)
}

// Left reports how many bids each window has left at now (-1: unlimited),
// without spending any; for the periodic summary and the status page.
func (b *Budget) Left(ctx context.Context, marketplaceID string, now time.Time) (hour, day int, err error) {
	if err := b.check(marketplaceID); err != nil {
		return 0, 0, err
	}
	hourKey, dayKey := b.Keys(marketplaceID, now)
	// One slot (the hash tag), so one pipeline to one node on Cluster too.
	var hc, dc *redis.IntCmd
	if _, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		hc, dc = p.SCard(ctx, hourKey), p.SCard(ctx, dayKey)
		return nil
	}); err != nil {
		return 0, 0, fmt.Errorf("%w: read for %q: %w", ErrBudgetUnavailable, marketplaceID, err)
	}
	left := func(limit int, used int64) int {
		if limit == 0 {
			return -1
		}
		return max(limit-int(used), 0)
	}
	return left(b.perHour, hc.Val()), left(b.perDay, dc.Val()), nil
}
