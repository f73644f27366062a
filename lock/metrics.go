package lock

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidder/bidder/internal/promx"
)

// Metrics is a snapshot of one Manager's counters (the seed's five).
// Attempts = Successes + Conflicts + Timeouts + RedisErrors: each call to
// TryAcquire or Acquire counts once, by its outcome.
type Metrics struct {
	Attempts    uint64
	Successes   uint64
	Conflicts   uint64
	Timeouts    uint64
	RedisErrors uint64
	Lost        uint64 // locks lost while held (not part of Attempts)
}

type counters struct {
	attempts, successes, conflicts, timeouts, redisErrors, lost atomic.Uint64
}

func (c *counters) snapshot() Metrics {
	return Metrics{
		Attempts:    c.attempts.Load(),
		Successes:   c.successes.Load(),
		Conflicts:   c.conflicts.Load(),
		Timeouts:    c.timeouts.Load(),
		RedisErrors: c.redisErrors.Load(),
		Lost:        c.lost.Load(),
	}
}

// Outcome labels of bidder_lock_acquire_total.
const (
	resultAcquired = "acquired"
	resultConflict = "conflict"
	resultTimeout  = "timeout"
	resultError    = "error"
)

type promMetrics struct {
	acquire  *prometheus.CounterVec
	wait     prometheus.Histogram
	held     prometheus.Histogram
	lost     prometheus.Counter
	renewals *prometheus.CounterVec

	acquired, conflict, timeout, failed prometheus.Counter
	renewOK, renewLost, renewError      prometheus.Counter
}

func newPromMetrics(r prometheus.Registerer) *promMetrics {
	m := &promMetrics{
		acquire: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_lock_acquire_total",
			Help: "Lock acquisitions by outcome (acquired, conflict, timeout, error); one per TryAcquire/Acquire call.",
		}, []string{"result"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bidder_lock_wait_seconds",
			Help:    "Time from the start of TryAcquire/Acquire to its outcome.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		held: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bidder_lock_held_seconds",
			Help:    "Time from acquisition to release or loss.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bidder_lock_lost_total",
			Help: "Locks lost while held: expired, taken over, or unconfirmable because Redis was unreachable.",
		}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_lock_renewals_total",
			Help: "Watchdog and manual renewals by result (ok, lost, error).",
		}, []string{"result"}),
	}
	if r != nil {
		m.acquire = promx.Register(r, m.acquire)
		m.wait = promx.Register(r, m.wait)
		m.held = promx.Register(r, m.held)
		m.lost = promx.Register(r, m.lost)
		m.renewals = promx.Register(r, m.renewals)
	}
	m.acquired = m.acquire.WithLabelValues(resultAcquired)
	m.conflict = m.acquire.WithLabelValues(resultConflict)
	m.timeout = m.acquire.WithLabelValues(resultTimeout)
	m.failed = m.acquire.WithLabelValues(resultError)
	m.renewOK = m.renewals.WithLabelValues("ok")
	m.renewLost = m.renewals.WithLabelValues("lost")
	m.renewError = m.renewals.WithLabelValues("error")
	return m
}
