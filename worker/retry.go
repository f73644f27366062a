package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/bidder/bidder/marketplace"
)

// waitError asks asynq to run the task again after a delay. When counted is
// false the retry does not count towards MaxRetry (asynq's IsFailure): the
// task is waiting (lock busy, rate limited, earlier attempt settling), not
// failing.
type waitError struct {
	after   time.Duration
	counted bool
	err     error
}

func (e *waitError) Error() string {
	return fmt.Sprintf("%v (retry in %s)", e.err, e.after.Round(time.Millisecond))
}
func (e *waitError) Unwrap() error { return e.err }

func retryIn(after time.Duration, counted bool, err error) error {
	return &waitError{after: max(after, 10*time.Millisecond), counted: counted, err: err}
}

// Delayer is an error from another package's handler (notify) that asks
// for its own retry delay, or for a retry that is not a failure: the
// server's policy reads it without those packages importing worker.
type Delayer interface {
	RetryAfter() time.Duration // 0: the default backoff
	CountsAsFailure() bool
}

// MaxBackoff caps the delay between counted retries.
const MaxBackoff = 5 * time.Minute

// RetryDelay is the server's asynq.RetryDelayFunc: the delay a handler asked
// for, or exponential backoff from 1s with jitter, capped at MaxBackoff.
// (asynq's default starts at 15s and grows as n^4: too slow for postings
// that close.)
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var w *waitError
	if errors.As(err, &w) {
		return w.after + rand.N(w.after/10+time.Millisecond)
	}
	var dl Delayer
	if errors.As(err, &dl) && dl.RetryAfter() > 0 {
		after := min(dl.RetryAfter(), time.Hour)
		return after + rand.N(after/10+time.Millisecond)
	}
	d := min(time.Second<<min(n, 10), MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// IsFailure is the server's asynq IsFailure: waiting is not failing.
func IsFailure(err error) bool {
	var w *waitError
	if errors.As(err, &w) {
		return w.counted
	}
	var dl Delayer
	if errors.As(err, &dl) {
		return dl.CountsAsFailure()
	}
	return true
}

func skipRetry(err error) error { return fmt.Errorf("%w: %w", err, asynq.SkipRetry) }

// wait is a retry after d that does not count as a failure.
func (h *BidHandler) wait(d time.Duration, err error) error { return retryIn(d, false, err) }

// redisFailed is a Redis failure's effect on the task: Redis unreachable is
// a wait (the process's condition, not the posting's failure); an answer
// that refused a command counts.
func (h *BidHandler) redisFailed(err error) error {
	if redisUnreachable(err) {
		h.conditions.Set(CondRedisDown, "", err.Error())
		return h.wait(h.busyDelay, err)
	}
	return err
}

// marketplaceFailed is a marketplace failure's effect on the task (from
// PrepareBid, FindBid or a bid that placed nothing): rate limits and a
// refused token wait; transient failures count, unless the marketplace as a
// whole is down, which is a wait too.
func (h *BidHandler) marketplaceFailed(ctx context.Context, marketplaceID, op string, err error) error {
	switch errorClass(err) {
	case "rate_limited":
		after, _ := marketplace.RetryAfter(err)
		return h.wait(max(after, time.Second), err)
	case "unauthorized":
		h.conditions.Set(CondUnauthorized, marketplaceID, op+": "+err.Error())
		// Once an hour per marketplace, whoever meets it; a failure loses
		// the notification, never the posting.
		if nerr := h.ledger.NotifyUnauthorized(ctx, marketplaceID, h.now(), op+": "+err.Error()); nerr != nil {
			h.log.Warn("cannot write the marketplace_unauthorized notification", zap.Error(nerr))
		}
		return h.wait(h.waitDelay, err)
	case "transient":
		if h.conditions.marketplaceFailed(marketplaceID, err) {
			return h.wait(h.waitDelay, err)
		}
	}
	return err
}

// cannotRun leaves a task this worker cannot run for one that can: a retry
// that does not count, a warning, a metric.
func (h *BidHandler) cannotRun(marketplaceID, reason string, err error) error {
	h.metrics.unhandled.WithLabelValues(reason).Inc()
	h.log.Warn("bid task left for another worker", zap.String("marketplace", marketplaceID), zap.String("reason", reason), zap.Error(err))
	return h.wait(h.waitDelay, err)
}
