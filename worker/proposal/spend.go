package proposal

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/worker/rules"
)

var (
	//go:embed spend_reserve.lua
	reserveLua string
	//go:embed spend_settle.lua
	settleLua string

	reserveScript = redis.NewScript(reserveLua)
	settleScript  = redis.NewScript(settleLua)
)

// DefaultSpendPrefix is used when NewSpend gets an empty prefix.
const DefaultSpendPrefix = "proposal_spend"

// spendGrace keeps a window's counter alive past its end (see
// rules.Windows.TTLs), and so a call that started just before the end
// settles into a live counter.
const spendGrace = time.Hour

var (
	// ErrSpendCap: the hour's or the day's tokens are spent (CapError says
	// until when).
	ErrSpendCap = errors.New("proposal: token spend cap reached")
	// ErrSpendUnavailable wraps every Redis failure of Reserve and Settle:
	// the cap could not be checked, so the model is not called.
	ErrSpendUnavailable = errors.New("proposal: token spend cap unavailable")
	// ErrInvalidSpend: the Spend or its arguments cannot be used.
	ErrInvalidSpend = errors.New("proposal: invalid token spend cap")
)

// CapError is the ErrSpendCap Reserve returns.
type CapError struct {
	Window  string // "hour" or "day"
	RetryAt time.Time
}

func (e *CapError) Error() string {
	return fmt.Sprintf("proposal: token spend cap of the %s reached; room again at %s", e.Window, e.RetryAt.Format(time.RFC3339))
}

// Is makes a CapError match ErrSpendCap.
func (e *CapError) Is(target error) bool { return target == ErrSpendCap }

// Spend caps the tokens all instances together spend on model-written
// proposals per marketplace per UTC hour and UTC day, with counters in
// Redis. A call reserves its most before it starts and settles to what it
// used after, so concurrent calls never spend past the cap by more than
// what the model used beyond the reservation.
type Spend struct {
	rdb     redis.UniversalClient
	prefix  string
	perHour int64
	perDay  int64
}

// NewSpend returns a Spend allowing perHour tokens per UTC hour and perDay
// per UTC day for each marketplace (0 = unlimited). Keys are the
// rules.Windows of the prefix and ...:r:<request ID>, all in the
// marketplace's slot.
func NewSpend(rdb redis.UniversalClient, keyPrefix string, perHour, perDay int64) *Spend {
	if keyPrefix == "" {
		keyPrefix = DefaultSpendPrefix
	}
	return &Spend{rdb: rdb, prefix: keyPrefix, perHour: perHour, perDay: perDay}
}

// Reservation is one request's reserved tokens. It remembers the windows it
// was taken from, so a settlement after the hour turned corrects the right
// counters.
type Reservation struct {
	MarketplaceID string
	RequestID     string
	Tokens        int64
	keys          []string
}

func (s *Spend) check(marketplaceID, requestID string, tokens int64) error {
	switch {
	case s == nil || s.rdb == nil:
		return fmt.Errorf("%w: no Redis client", ErrInvalidSpend)
	case s.perHour < 0 || s.perDay < 0:
		return fmt.Errorf("%w: limits must be >= 0, got per hour %d, per day %d", ErrInvalidSpend, s.perHour, s.perDay)
	case requestID == "" || strings.ContainsAny(requestID, "{}"):
		return fmt.Errorf("%w: request ID %q must be non-empty and without braces", ErrInvalidSpend, requestID)
	case tokens <= 0:
		return fmt.Errorf("%w: reserve a positive number of tokens, got %d", ErrInvalidSpend, tokens)
	}
	if err := rules.CheckWindowKeys(s.prefix, marketplaceID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpend, err)
	}
	return nil
}

// Keys returns the hour and day counter keys at now; for operators and tests.
func (s *Spend) Keys(marketplaceID string, now time.Time) (hourKey, dayKey string) {
	w := rules.WindowsAt(s.prefix, marketplaceID, now)
	return w.HourKey, w.DayKey
}

// Reserve takes tokens from marketplaceID's budget for the request, or
// returns a *CapError when the hour or the day has less room. Running it
// again for the same requestID (a retried script whose reply was lost)
// reserves nothing more. Redis errors match ErrSpendUnavailable.
func (s *Spend) Reserve(ctx context.Context, marketplaceID, requestID string, tokens int64, now time.Time) (Reservation, error) {
	if err := s.check(marketplaceID, requestID, tokens); err != nil {
		return Reservation{}, err
	}
	w := rules.WindowsAt(s.prefix, marketplaceID, now)
	r := Reservation{MarketplaceID: marketplaceID, RequestID: requestID, Tokens: tokens,
		keys: []string{w.HourKey, w.DayKey, w.Base + "r:" + requestID}}
	// The reservation lives as long as the day counter it may correct.
	hourTTL, dayTTL := w.TTLs(now, spendGrace)
	res, err := reserveScript.Run(ctx, s.rdb, r.keys, s.perHour, s.perDay, tokens, hourTTL, dayTTL, dayTTL).Int64Slice()
	if err != nil {
		return Reservation{}, fmt.Errorf("%w: reserve for %q: %w", ErrSpendUnavailable, marketplaceID, err)
	}
	switch {
	case len(res) != 2:
	case res[0] == 1:
		return r, nil
	case res[1] == 2:
		return Reservation{}, &CapError{Window: "day", RetryAt: w.DayEnd}
	case res[1] == 1:
		return Reservation{}, &CapError{Window: "hour", RetryAt: w.HourEnd}
	}
	return Reservation{}, fmt.Errorf("%w: reserve for %q: unexpected script reply %v", ErrSpendUnavailable, marketplaceID, res)
}

// Settle corrects r's windows to the tokens the call used (0 for a call the
// server refused). Running it again changes nothing. A reservation never
// settled stays charged in full until its window ends: a crashed worker
// errs towards spending less.
func (s *Spend) Settle(ctx context.Context, r Reservation, used int64) error {
	if len(r.keys) != 3 || used < 0 {
		return fmt.Errorf("%w: settle %q: not a reservation of Reserve, or negative usage %d", ErrInvalidSpend, r.RequestID, used)
	}
	res, err := settleScript.Run(ctx, s.rdb, r.keys, used).Int64Slice()
	if err != nil {
		return fmt.Errorf("%w: settle for %q: %w", ErrSpendUnavailable, r.MarketplaceID, err)
	}
	if len(res) != 2 || res[0] < 0 || res[0] > 2 {
		return fmt.Errorf("%w: settle for %q: unexpected script reply %v", ErrSpendUnavailable, r.MarketplaceID, res)
	}
	return nil
}

// Used returns the tokens counted in marketplaceID's hour and day at now.
func (s *Spend) Used(ctx context.Context, marketplaceID string, now time.Time) (hour, day int64, err error) {
	hourKey, dayKey := s.Keys(marketplaceID, now)
	vals, err := s.rdb.MGet(ctx, hourKey, dayKey).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: read for %q: %w", ErrSpendUnavailable, marketplaceID, err)
	}
	out := make([]int64, 2)
	for i, v := range vals {
		if str, ok := v.(string); ok {
			if out[i], err = strconv.ParseInt(str, 10, 64); err != nil {
				return 0, 0, fmt.Errorf("%w: read for %q: counter %q is not a number", ErrSpendUnavailable, marketplaceID, str)
			}
		}
	}
	return out[0], out[1], nil
}
