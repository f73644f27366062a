package scanner

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidder/bidder/internal/promx"
)

// Scan results, the label values of bidder_scan_runs_total.
const (
	ResultCaughtUp    = "caught_up"    // paged until the marketplace had nothing new
	ResultPageLimit   = "page_limit"   // stopped at the pages-per-task bound; the next slot continues
	ResultRateBudget  = "rate_budget"  // the shared request rate would have made it wait too long
	ResultRateLimited = "rate_limited" // the marketplace said 429 for longer than the scan may wait
	ResultBusy        = "busy"         // another scan of the marketplace held the lock
	ResultError       = "error"        // ended with an error (asynq retries it)
	ResultBadTask     = "bad_task"     // undecodable payload or unknown marketplace; archived
)

// Slot enqueue results, the label values of bidder_scan_slots_total.
const (
	SlotEnqueued  = "enqueued"  // this instance enqueued the slot's scan
	SlotDuplicate = "duplicate" // another instance had already (ErrTaskIDConflict)
	SlotError     = "error"     // Redis refused; retried shortly
)

// Metrics are the scanner's Prometheus metrics, shared by the Scheduler and
// the scan handler.
type Metrics struct {
	runs       *prometheus.CounterVec
	seen       *prometheus.CounterVec
	enqueued   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	invalid    *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	lag        *prometheus.GaugeVec
	slots      *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	recovered  *prometheus.CounterVec
	recoveries *prometheus.CounterVec
	reviews    *prometheus.CounterVec
	trackRuns  *prometheus.CounterVec
	polled     *prometheus.CounterVec
	outcomes   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on r (nil: unregistered).
// Registering twice on one registry reuses the first set, so several
// handlers and schedulers in one process share series.
func NewMetrics(r prometheus.Registerer) *Metrics {
	mp := []string{"marketplace"}
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_scan_runs_total",
			Help: "Scan task runs by marketplace and result (caught_up, page_limit, rate_budget, rate_limited, busy, error, bad_task).",
		}, []string{"marketplace", "result"}),
		seen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_postings_seen_total",
			Help: "Postings returned by marketplace scans (a re-scanned page counts again).",
		}, mp),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_postings_enqueued_total",
			Help: "Bid tasks the scanner enqueued.",
		}, mp),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_enqueue_duplicates_total",
			Help: "Bid task enqueues refused because the posting's task ID existed (ErrTaskIDConflict).",
		}, mp),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_postings_invalid_total",
			Help: "Postings not enqueued because their ID or payload failed validation.",
		}, mp),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bidder_scan_duration_seconds",
			Help:    "Time one scan task took, by marketplace.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}, mp),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bidder_scan_cursor_lag_seconds",
			Help: "Now minus posted_at of the newest posting the last scan page showed.",
		}, mp),
		slots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_scan_slots_total",
			Help: "Scheduler enqueue attempts of a slot's scan task by result (enqueued, duplicate, error); summed over instances, enqueued is one per slot.",
		}, []string{"marketplace", "result"}),
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_recovery_enqueued_total",
			Help: "Undecided postings whose bid task was gone (a failover, an eviction, a deletion) and that the recovery pass enqueued again.",
		}, mp),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_recovery_runs_total",
			Help: "Recovery passes by marketplace and result (ok, error); one per marketplace per interval across all instances.",
		}, []string{"marketplace", "result"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_recovery_reviews_ended_total",
			Help: "Postings in review the recovery pass ended (expired, no bid) by reason: deadline (nobody reviewed them in time), closed (the marketplace closed the posting).",
		}, []string{"marketplace", "reason"}),
		trackRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_tracker_runs_total",
			Help: "Tracker task runs by marketplace and result (ok, rate_budget, unsupported: the adapter cannot read bid statuses, error).",
		}, []string{"marketplace", "result"}),
		polled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_tracker_polled_bids_total",
			Help: "Placed bids whose status the tracker asked the marketplace for.",
		}, mp),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_bid_outcomes_total",
			Help: "Bid outcome changes the tracker recorded, by marketplace and new outcome (awarded, rejected, retracted, no_answer). The ledger is the record; bidder report reads it.",
		}, []string{"marketplace", "outcome"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_scan_schedule_reloads_total",
			Help: "Schedule config reads by result (ok, error, invalid_spec).",
		}, []string{"result"}),
	}
	if r != nil {
		m.runs = promx.Register(r, m.runs)
		m.seen = promx.Register(r, m.seen)
		m.enqueued = promx.Register(r, m.enqueued)
		m.duplicates = promx.Register(r, m.duplicates)
		m.invalid = promx.Register(r, m.invalid)
		m.duration = promx.Register(r, m.duration)
		m.lag = promx.Register(r, m.lag)
		m.slots = promx.Register(r, m.slots)
		m.reloads = promx.Register(r, m.reloads)
		m.recovered = promx.Register(r, m.recovered)
		m.recoveries = promx.Register(r, m.recoveries)
		m.reviews = promx.Register(r, m.reviews)
		m.trackRuns = promx.Register(r, m.trackRuns)
		m.polled = promx.Register(r, m.polled)
		m.outcomes = promx.Register(r, m.outcomes)
	}
	for _, res := range []string{"ok", "error", "invalid_spec"} {
		m.reloads.WithLabelValues(res)
	}
	return m
}

// Reasons of bidder_recovery_reviews_ended_total.
const (
	ReviewEndedDeadline = "deadline"
	ReviewEndedClosed   = "closed"
)

// forMarketplace creates a marketplace's series at zero, so that alerts on
// rate() see 0, not "no data", before the first event.
func (m *Metrics) forMarketplace(id string) {
	for _, v := range []*prometheus.CounterVec{m.seen, m.enqueued, m.duplicates, m.invalid, m.recovered, m.polled} {
		v.WithLabelValues(id)
	}
	for _, res := range []string{"ok", "error"} {
		m.recoveries.WithLabelValues(id, res)
	}
	for _, why := range []string{ReviewEndedDeadline, ReviewEndedClosed} {
		m.reviews.WithLabelValues(id, why)
	}
}
