package notify

import (
	"fmt"
	"slices"
	"time"

	"github.com/bidder/bidder/ledger"
)

// Task type and queue of a send.
const (
	TypeSend = "notify:send"
	Queue    = "notify"
)

// Defaults.
const (
	DefaultSweepEvery = 2 * time.Second
	DefaultMaxRetry   = 20
	// DefaultRetention is how long a delivered send task (its ID) and its
	// delivery key are kept: a sweep re-enqueueing an entry within it is a
	// task ID conflict, a send run again finds "sent".
	DefaultRetention = 7 * 24 * time.Hour
	DefaultKeyPrefix = "bid_notify"
	// DefaultLease bounds one sweep of one marketplace's outboxes: the
	// lease is what keeps other instances from sweeping it meanwhile.
	DefaultLease = 30 * time.Second
)

// Events lists every event kind, for filters.
var Events = []string{ledger.EventBidPlaced, ledger.EventReviewNeeded, ledger.EventPostingParked, ledger.EventBudgetSpent,
	ledger.EventMarketplaceUnauthorized, EventRedisUnreachable}

// Route is a channel with what it receives and how fast.
type Route struct {
	Channel Channel
	// Events are the kinds the channel receives; nil: all.
	Events []string
	// RatePerSecond is the channel's send rate across all instances; 0:
	// unlimited.
	RatePerSecond float64
}

// Wants reports whether the route receives events of kind.
func (r Route) Wants(kind string) bool { return r.Events == nil || slices.Contains(r.Events, kind) }

// Config is what both the sweeper and the handler need.
type Config struct {
	Marketplaces []string
	Routes       []Route
	SweepEvery   time.Duration
	MaxRetry     int
	Retention    time.Duration
	KeyPrefix    string
}

func (c Config) withDefaults() Config {
	if c.SweepEvery <= 0 {
		c.SweepEvery = DefaultSweepEvery
	}
	if c.MaxRetry <= 0 {
		c.MaxRetry = DefaultMaxRetry
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	return c
}

// TaskID is the asynq task ID of event id's send to channel: the same for
// every sweep, so asynq enqueues it once.
func TaskID(channel, eventID string) string { return "notify:" + channel + ":" + eventID }

// DeliveryKey is the Redis key that records event id's delivery to channel.
func (c Config) DeliveryKey(channel, eventID string) string {
	return c.withDefaults().KeyPrefix + ":" + channel + ":" + eventID
}

// RetryError asks for the task to run again after After (0: the server's
// backoff). Counted false: the retry does not count towards max_retry (a
// rate limit is a wait, not a failure). The worker's asynq RetryDelayFunc
// and IsFailure read it through its methods.
type RetryError struct {
	After   time.Duration
	Counted bool
	Err     error
}

func (e *RetryError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("%v (retry in %s)", e.Err, e.After.Round(time.Millisecond))
	}
	return e.Err.Error()
}
func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter is the delay asked for (0: the server's backoff).
func (e *RetryError) RetryAfter() time.Duration { return e.After }

// CountsAsFailure reports whether the retry counts towards max_retry.
func (e *RetryError) CountsAsFailure() bool { return e.Counted }
