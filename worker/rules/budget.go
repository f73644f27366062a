package rules

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
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
// UTC hour and UTC day, with counters in Redis.
type Budget struct {
	rdb     redis.UniversalClient
	prefix  string
	perHour int
	perDay  int
}

// NewBudget returns a Budget allowing perHour bids per UTC hour and perDay
// per UTC day for each marketplace (0 = unlimited). Keys are
// <keyPrefix>:{<marketplace>}:h:<unix hour> and ...:d:<unix day>; the braces
// are a Cluster hash tag so both keys live in one slot and one script can
// check them together. Bad arguments surface as ErrInvalidBudget from Take,
// so that a misconfigured budget fails closed rather than unlimited.
func NewBudget(rdb redis.UniversalClient, keyPrefix string, perHour, perDay int) *Budget {
	if keyPrefix == "" {
		keyPrefix = DefaultBudgetPrefix
	}
	return &Budget{rdb: rdb, prefix: keyPrefix, perHour: perHour, perDay: perDay}
}

func (b *Budget) check(marketplaceID string) error {
	switch {
	case b == nil || b.rdb == nil:
		return fmt.Errorf("%w: no Redis client", ErrInvalidBudget)
	case b.perHour < 0 || b.perDay < 0:
		return fmt.Errorf("%w: limits must be >= 0, got per hour %d, per day %d", ErrInvalidBudget, b.perHour, b.perDay)
	}
	if err := CheckWindowKeys(b.prefix, marketplaceID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBudget, err)
	}
	return nil
}

// Keys returns the hour and day counter keys Take uses at now; for
// operators and tests.
func (b *Budget) Keys(marketplaceID string, now time.Time) (hourKey, dayKey string) {
	w := WindowsAt(b.prefix, marketplaceID, now)
	return w.HourKey, w.DayKey
}

// Take spends one bid of marketplaceID's budget at wall-clock time now, or
// reports that the hour or day is spent and when the next window opens
// (retryAt). Both windows are checked and incremented in one script, so
// concurrent callers on any number of instances never overspend. Any Redis
// error returns ok=false and an error matching ErrBudgetUnavailable.
func (b *Budget) Take(ctx context.Context, marketplaceID string, now time.Time) (ok bool, retryAt time.Time, err error) {
	if err := b.check(marketplaceID); err != nil {
		return false, time.Time{}, err
	}
	w := WindowsAt(b.prefix, marketplaceID, now)
	hourEnd, dayEnd := w.HourEnd, w.DayEnd
	hourTTL, dayTTL := w.TTLs(now, budgetGrace)

	res, err := takeScript.Run(ctx, b.rdb, []string{w.HourKey, w.DayKey},
		b.perHour, b.perDay, hourTTL, dayTTL).Int64Slice()
	if err != nil {
		return false, time.Time{}, fmt.Errorf("%w: take for %q: %w", ErrBudgetUnavailable, marketplaceID, err)
	}
	if len(res) != 2 {
		return false, time.Time{}, fmt.Errorf("%w: take for %q: unexpected script reply %v", ErrBudgetUnavailable, marketplaceID, res)
	}
	switch {
	case res[0] == 1:
		return true, time.Time{}, nil
	case res[1] == 2:
		return false, dayEnd, nil
	case res[1] == 1:
		return false, hourEnd, nil
	}
	return false, time.Time{}, fmt.Errorf("%w: take for %q: unexpected script reply %v", ErrBudgetUnavailable, marketplaceID, res)
}
