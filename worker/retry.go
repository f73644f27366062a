package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
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
	d := min(time.Second<<min(n, 10), MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// IsFailure is the server's asynq IsFailure: waiting is not failing.
func IsFailure(err error) bool {
	var w *waitError
	if errors.As(err, &w) {
		return w.counted
	}
	return true
}

func skipRetry(err error) error { return fmt.Errorf("%w: %w", err, asynq.SkipRetry) }
