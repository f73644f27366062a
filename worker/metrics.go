package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidder/bidder/internal/promx"
)

// Duplicate-prevention layers, the label values of
// bidder_duplicates_prevented_total.
const (
	LayerEnqueue     = "enqueue"     // asynq refused a second task for the posting
	LayerLock        = "lock"        // another worker held the posting's lock
	LayerLedger      = "ledger"      // the ledger already had a final decision
	LayerFence       = "fence"       // a stale holder's write was refused
	LayerMarketplace = "marketplace" // the marketplace said "already bid": should stay 0
)

// MetricBids is the name of the counter of final decisions, labelled
// marketplace and outcome; the periodic summary reads it.
const MetricBids = "bidder_bids_total"

// Bid outcomes, the label values of bidder_bids_total.
const (
	OutcomePlaced  = "placed"
	OutcomeSkipped = "skipped"
	OutcomeFailed  = "failed"
	OutcomeDryRun  = "dry_run"
	OutcomeReview  = "review" // sent to a human instead of bidding
)

// Metrics are the pipeline's Prometheus metrics. One value is shared by the
// handler, the middleware and the scanner (which counts the enqueue layer).
type Metrics struct {
	bids           *prometheus.CounterVec
	duplicates     *prometheus.CounterVec
	bidDuration    *prometheus.HistogramVec
	reconciliation *prometheus.CounterVec
	attempts       *prometheus.CounterVec
	invalid        *prometheus.CounterVec
	unhandled      *prometheus.CounterVec
	parked         *prometheus.CounterVec
	tasks          *prometheus.CounterVec
	taskDuration   *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them on r (nil: unregistered).
// Registering twice on one registry reuses the first set.
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		bids: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricBids,
			Help: "Bid decisions by marketplace and outcome (placed, skipped, failed, dry_run; review: sent to a human instead).",
		}, []string{"marketplace", "outcome"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_duplicates_prevented_total",
			Help: "Second attempts on a posting stopped, by the layer that stopped them (enqueue, lock, ledger, fence, marketplace).",
		}, []string{"layer"}),
		bidDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bidder_bid_duration_seconds",
			Help:    "Time one bid task attempt took in the handler, by marketplace.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"marketplace"}),
		reconciliation: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_reconciliations_total",
			Help: "Lookups of an earlier attempt's bid by result (found, not_found, too_early, error).",
		}, []string{"result"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_bid_errors_total",
			Help: "Bid attempts that did not end in a decision, by marketplace and error class.",
		}, []string{"marketplace", "class"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_bid_tasks_invalid_total",
			Help: "Bid tasks archived without processing because their payload was unusable.",
		}, []string{"reason"}),
		unhandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_bid_tasks_unhandled_total",
			Help: "Bid tasks this worker left for another (a retry that does not count) because it cannot run them, by reason (unknown_marketplace, payload_version).",
		}, []string{"reason"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_postings_parked_total",
			Help: "Postings this process parked because their attempts ran out, by marketplace and the class of the last failure; each waits for `bidder ledger resume`.",
		}, []string{"marketplace", "reason"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_tasks_total",
			Help: "Tasks handled by type (\"other\" for types this process has no handler for) and result (ok, retry, wait, archived).",
		}, []string{"type", "result"}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bidder_task_duration_seconds",
			Help:    "Task handler time by type (\"other\" for types this process has no handler for).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"type"}),
	}
	if r != nil {
		m.bids = promx.Register(r, m.bids)
		m.duplicates = promx.Register(r, m.duplicates)
		m.bidDuration = promx.Register(r, m.bidDuration)
		m.reconciliation = promx.Register(r, m.reconciliation)
		m.attempts = promx.Register(r, m.attempts)
		m.invalid = promx.Register(r, m.invalid)
		m.unhandled = promx.Register(r, m.unhandled)
		m.parked = promx.Register(r, m.parked)
		m.tasks = promx.Register(r, m.tasks)
		m.taskDuration = promx.Register(r, m.taskDuration)
	}
	// Known label values start at zero, so alerts on rate() see 0, not "no
	// data", before the first event.
	for _, l := range []string{LayerEnqueue, LayerLock, LayerLedger, LayerFence, LayerMarketplace} {
		m.duplicates.WithLabelValues(l)
	}
	for _, r := range []string{"found", "not_found", "too_early", "error"} {
		m.reconciliation.WithLabelValues(r)
	}
	for _, r := range []string{"unknown_marketplace", "payload_version"} {
		m.unhandled.WithLabelValues(r)
	}
	return m
}

// DuplicatePrevented counts a second attempt stopped at layer.
func (m *Metrics) DuplicatePrevented(layer string) { m.duplicates.WithLabelValues(layer).Inc() }

// DuplicatesPrevented returns the counter of one layer (for tests and
// status pages).
func (m *Metrics) DuplicatesPrevented(layer string) prometheus.Counter {
	return m.duplicates.WithLabelValues(layer)
}

// Reconciliations returns the counter of one reconciliation result.
func (m *Metrics) Reconciliations(result string) prometheus.Counter {
	return m.reconciliation.WithLabelValues(result)
}

// forMarketplace creates a marketplace's series at zero.
func (m *Metrics) forMarketplace(id string) {
	for _, o := range []string{OutcomePlaced, OutcomeSkipped, OutcomeFailed, OutcomeDryRun, OutcomeReview} {
		m.bids.WithLabelValues(id, o)
	}
	for _, c := range []string{"ambiguous", "rate_limited", "transient", "unauthorized"} {
		m.attempts.WithLabelValues(id, c)
	}
}
