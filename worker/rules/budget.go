package rules

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed budget.lua
var takeLua string

// takeScript is immutable; Run loads it by SHA and falls back to EVAL.
var takeScript = redis.NewScript(takeLua)

// DefaultBudgetPrefix is used when NewBudget gets an empty prefix.
const DefaultBudgetPrefix = "bid_budget"

// budgetGrace keeps a counter alive past its window so an instance whose
// clock lags another's by less than this still counts into the same key
// instead of finding it expired and starting again from zero.
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
	case strings.ContainsAny(b.prefix, "{}"):
		// A brace in the prefix would change which part is the hash tag.
		return fmt.Errorf("%w: key prefix %q must not contain braces", ErrInvalidBudget, b.prefix)
	case marketplaceID == "" || strings.ContainsAny(marketplaceID, "{}"):
		return fmt.Errorf("%w: marketplace ID %q must be non-empty and without braces", ErrInvalidBudget, marketplaceID)
	}
	return nil
}

// Keys returns the hour and day counter keys Take uses at now; for
// operators and tests.
func (b *Budget) Keys(marketplaceID string, now time.Time) (hourKey, dayKey string) {
	now = now.UTC()
	base := b.prefix + ":{" + marketplaceID + "}:"
	return base + "h:" + strconv.FormatInt(now.Unix()/3600, 10), base + "d:" + strconv.FormatInt(now.Unix()/86400, 10)
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
	now = now.UTC()
	// Windows are whole UTC hours and days since the Unix epoch; the key
	// names use the same numbers so every instance agrees on them.
	hourStart := time.Unix(now.Unix()/3600*3600, 0).UTC()
	dayStart := time.Unix(now.Unix()/86400*86400, 0).UTC()
	hourEnd, dayEnd := hourStart.Add(time.Hour), dayStart.Add(24*time.Hour)
	hourKey, dayKey := b.Keys(marketplaceID, now)

	res, err := takeScript.Run(ctx, b.rdb, []string{hourKey, dayKey},
		b.perHour, b.perDay, ttlMillis(hourEnd.Sub(now)), ttlMillis(dayEnd.Sub(now))).Int64Slice()
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

func ttlMillis(untilWindowEnd time.Duration) int64 {
	return (untilWindowEnd + budgetGrace).Milliseconds()
}

// Left returns how many bids marketplaceID may still place in the UTC hour
// and day of now (-1 for a window without a limit), for summaries and
// status pages. It spends nothing, and a Take may change it at once.
func (b *Budget) Left(ctx context.Context, marketplaceID string, now time.Time) (hour, day int, err error) {
	if err := b.check(marketplaceID); err != nil {
		return 0, 0, err
	}
	hourKey, dayKey := b.Keys(marketplaceID, now)
	// One slot (the hash tag), so one MGET on Cluster too.
	vals, err := b.rdb.MGet(ctx, hourKey, dayKey).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: read for %q: %w", ErrBudgetUnavailable, marketplaceID, err)
	}
	if len(vals) != 2 {
		return 0, 0, fmt.Errorf("%w: read for %q: unexpected reply %v", ErrBudgetUnavailable, marketplaceID, vals)
	}
	left := func(limit int, v any) (int, error) {
		if limit == 0 {
			return -1, nil
		}
		used := 0
		if s, ok := v.(string); ok {
			n, err := strconv.Atoi(s)
			if err != nil {
				return 0, fmt.Errorf("%w: read for %q: counter holds %q", ErrBudgetUnavailable, marketplaceID, s)
			}
			used = n
		}
		return max(limit-used, 0), nil
	}
	if hour, err = left(b.perHour, vals[0]); err != nil {
		return 0, 0, err
	}
	if day, err = left(b.perDay, vals[1]); err != nil {
		return 0, 0, err
	}
	return hour, day, nil
}
