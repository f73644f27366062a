package worker

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

type delayErr struct {
	after   time.Duration
	counted bool
}

func (e delayErr) Error() string             { return "later" }
func (e delayErr) RetryAfter() time.Duration { return e.after }
func (e delayErr) CountsAsFailure() bool     { return e.counted }

// Another package's handler (notify) asks for its retry delay and whether
// it counts through Delayer, wrapped or not.
func TestRetryDelayHonoursADelayer(t *testing.T) {
	err := fmt.Errorf("send: %w", delayErr{after: 7 * time.Second})
	if d := RetryDelay(1, err, nil); d < 7*time.Second || d > 8*time.Second {
		t.Fatalf("delay %s, want about 7s", d)
	}
	if IsFailure(err) || taskResult(err) != "wait" {
		t.Fatal("an uncounted Delayer counted as a failure")
	}
	counted := delayErr{counted: true}
	if !IsFailure(counted) || taskResult(counted) != "retry" {
		t.Fatal("a counted Delayer is a failure")
	}
	if d := RetryDelay(1, counted, nil); d > 2*time.Second {
		t.Fatalf("no delay asked: want the default backoff, got %s", d)
	}
	if !IsFailure(errors.New("x")) {
		t.Fatal("a plain error is a failure")
	}
}
