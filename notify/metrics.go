package notify

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidder/bidder/internal/promx"
	"github.com/bidder/bidder/ledger"
)

// Metrics are the notifier's counters. Label values are configured channel
// names, known event kinds and fixed reasons: nothing read from Redis or a
// channel's answer becomes a label.
type Metrics struct {
	sent        *prometheus.CounterVec // channel, event
	failed      *prometheus.CounterVec // channel, reason
	ambiguous   *prometheus.CounterVec // channel
	duplicate   *prometheus.CounterVec // channel
	rateLimited *prometheus.CounterVec // channel
	swept       *prometheus.CounterVec // result
}

// Failure reasons of bidder_notify_failed_total.
const (
	ReasonPermanent = "permanent" // refused: archived without retry
	ReasonRetryable = "retryable" // not delivered: asynq retries
	ReasonAmbiguous = "ambiguous" // idempotent channel, outcome unknown: sent again
	ReasonRedis     = "redis"     // the delivery key could not be read or written
	ReasonBadTask   = "bad_task"  // a task this process cannot read or has no channel for
)

// NewMetrics registers the notifier's metrics on r (nil: unregistered).
func NewMetrics(r prometheus.Registerer) *Metrics {
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bidder_notify_" + name + "_total", Help: help}, labels)
		if r != nil {
			v = promx.Register(r, v)
		}
		return v
	}
	return &Metrics{
		sent:   c("sent", "Notifications delivered, by channel and event.", "channel", "event"),
		failed: c("failed", "Failed notification sends, by channel and reason: permanent (archived), retryable (asynq retries), ambiguous (idempotent channel, sent again), redis, bad_task.", "channel", "reason"),
		ambiguous: c("ambiguous", "Notifications to a channel without idempotency whose earlier send may or may not have arrived; not sent again (at most once).",
			"channel"),
		duplicate:   c("skipped_duplicate", "Send tasks for a notification already delivered to the channel.", "channel"),
		rateLimited: c("rate_limited", "Sends put off by the channel's shared rate limit.", "channel"),
		swept:       c("swept", "Outbox entries swept, by result: enqueued, duplicate (task already exists), filtered (no channel wants it), corrupt (dropped).", "result"),
	}
}

// eventLabel bounds the event label to the kinds the ledger writes.
func eventLabel(kind string) string {
	switch kind {
	case ledger.EventBidPlaced, ledger.EventReviewNeeded, ledger.EventPostingParked, ledger.EventBudgetSpent:
		return kind
	}
	return "other"
}

// zero makes a channel's series exist (at zero) before the first event.
func (m *Metrics) zero(channel string) {
	for _, e := range Events {
		m.sent.WithLabelValues(channel, e)
	}
	for _, r := range []string{ReasonPermanent, ReasonRetryable, ReasonAmbiguous, ReasonRedis} {
		m.failed.WithLabelValues(channel, r)
	}
	m.ambiguous.WithLabelValues(channel)
	m.duplicate.WithLabelValues(channel)
	m.rateLimited.WithLabelValues(channel)
}
