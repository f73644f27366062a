package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Report is the outcome of one run; it is also written as JSON.
type Report struct {
	Scenario       string  `json:"scenario"`
	Seed           uint64  `json:"seed"`
	Workers        int     `json:"workers"`
	Scanners       int     `json:"scanners"`
	Concurrency    int     `json:"concurrency_per_worker"`
	Persistence    bool    `json:"redis_persistence"`
	Topology       string  `json:"topology"`
	Replicas       int     `json:"replicas,omitempty"`      // sentinel topology
	WaitReplicas   int     `json:"wait_replicas,omitempty"` // ledger.wait_replicas (sentinel topology)
	Mix            string  `json:"fault_mix"`
	Schedule       string  `json:"scheduled_faults,omitempty"`
	MaxRetry       int     `json:"worker_max_retry,omitempty"` // 0: bidder's default
	SharedQueue    bool    `json:"shared_bid_queue,omitempty"` // worker.queue_per_marketplace: false
	Fleets         string  `json:"fleets,omitempty"`
	SandboxFaults  string  `json:"sandbox"`
	LockTTL        string  `json:"lock_ttl"`
	SettleDelay    string  `json:"settle_delay"`
	RequestTimeout string  `json:"request_timeout"`
	PublishSeconds float64 `json:"publish_seconds"`

	Faults   map[string]int `json:"faults_injected"`
	Postings int            `json:"postings"`
	Bids     int64          `json:"bids"`
	Stats    SandboxStats   `json:"sandbox_stats"`
	Ledger   map[string]int `json:"ledger_states"` // at the end, every marketplace
	// Accounts: a run with two accounts (Config.Accounts).
	Accounts *AccountsReport `json:"accounts,omitempty"`
	// Marketplaces breaks the figures down when there are two (TwoFleets).
	Marketplaces map[string]MarketplaceReport `json:"marketplaces,omitempty"`

	// Parked postings after the first drain, by "marketplace/reason", which
	// `bidder ledger resume --all` then brought back.
	Parked         map[string]int `json:"parked_before_resume"`
	ParkedTotal    int            `json:"parked_total"`
	ParkedExamples []string       `json:"parked_examples,omitempty"`
	Resumed        int            `json:"resumed"`
	ResumeSeconds  float64        `json:"resume_to_all_final_s"`

	Review *ReviewReport `json:"review,omitempty"` // Config.ReviewShare > 0
	Notify *NotifyReport `json:"notify,omitempty"` // Config.Notify

	Freezes      []FreezeReport  `json:"freezes,omitempty"`
	Outages      []OutageReport  `json:"outages,omitempty"`
	ReplicaDowns []ReplicaReport `json:"replica_downs,omitempty"`

	DuplicatesPrevented map[string]float64 `json:"duplicates_prevented"`
	Reconciliations     map[string]float64 `json:"reconciliations"`
	BidOutcomes         map[string]float64 `json:"bid_outcomes"`
	Unhandled           map[string]float64 `json:"bid_tasks_unhandled"` // bidder_bid_tasks_unhandled_total by reason
	ParkedByWorkers     map[string]float64 `json:"parked_by_workers"`   // bidder_postings_parked_total by reason
	RecoveryEnqueued    float64            `json:"recovery_enqueued"`   // bidder_recovery_enqueued_total

	Failovers  []string `json:"failovers,omitempty"`   // one line per kill_master
	RedisNodes string   `json:"redis_nodes,omitempty"` // roles at the end (sentinel topology)

	Drained       bool              `json:"drained"`
	DrainSeconds  float64           `json:"drain_seconds"`
	TotalSeconds  float64           `json:"total_seconds"`
	LocksLeft     []string          `json:"locks_left,omitempty"`
	Archived      []Archived        `json:"archived,omitempty"`
	ArchivedScans map[string]int    `json:"archived_scans,omitempty"` // by reason class
	Exits         map[string]string `json:"exits"`
	Notes         []string          `json:"notes,omitempty"`
	Failures      []string          `json:"failures,omitempty"`
	Passed        bool              `json:"passed"`
	LogDir        string            `json:"log_dir,omitempty"`
	LogsKept      bool              `json:"logs_kept"`
}

// MarketplaceReport is one marketplace's figures.
type MarketplaceReport struct {
	Postings   int            `json:"postings"`
	Bids       int64          `json:"bids"`
	Duplicates int64          `json:"duplicate_bids"`
	Ledger     map[string]int `json:"ledger_states"`
}

// Archived is one archived asynq task.
type Archived struct {
	Queue   string `json:"queue"`
	ID      string `json:"id"`
	LastErr string `json:"last_err"`
	Retried int    `json:"retried"`
}

func (r *Report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func kv[V int | float64](m map[string]V) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// String is the human-readable report.
func (r *Report) String() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "chaos scenario %s: %s\n", r.Scenario, verdict)
	fmt.Fprintf(&b, "  setup:        %d workers (concurrency %d), %d scanners, redis persistence=%v, seed %d\n",
		r.Workers, r.Concurrency, r.Scanners, r.Persistence, r.Seed)
	fmt.Fprintf(&b, "                lock ttl %s, settle delay %s, adapter timeout %s, publishing %.0fs\n",
		r.LockTTL, r.SettleDelay, r.RequestTimeout, r.PublishSeconds)
	if r.Topology == TopologySentinel {
		fmt.Fprintf(&b, "  topology:     sentinel, %d replicas, ledger.wait_replicas=%d; nodes at the end: %s\n", r.Replicas, r.WaitReplicas, r.RedisNodes)
		for _, f := range r.Failovers {
			fmt.Fprintf(&b, "    failover: %s\n", f)
		}
	}
	fmt.Fprintf(&b, "  sandbox:      %s\n", r.SandboxFaults)
	if r.MaxRetry > 0 || r.SharedQueue || r.Fleets != "" {
		fmt.Fprintf(&b, "  workers:      max_retry=%d shared_bid_queue=%v %s\n", r.MaxRetry, r.SharedQueue, r.Fleets)
	}
	if r.Schedule != "" {
		fmt.Fprintf(&b, "  scheduled:    %s\n", r.Schedule)
	}
	fmt.Fprintf(&b, "  faults:       %s\n", kv(r.Faults))
	for _, f := range r.Freezes {
		fmt.Fprintf(&b, "    freeze: %s\n", f.String())
	}
	for _, o := range r.Outages {
		fmt.Fprintf(&b, "    outage: %s\n", o.String())
	}
	for _, x := range r.ReplicaDowns {
		fmt.Fprintf(&b, "    replica_down: %s\n", x.String())
	}
	fmt.Fprintf(&b, "  postings:     %d   bids: %d   duplicate_bids: %d   postings_with_multiple_bids: %d\n",
		r.Postings, r.Bids, r.Stats.DuplicateBids, r.Stats.PostingsWithMultipleBids)
	fmt.Fprintf(&b, "  ledger:       %s\n", kv(r.Ledger))
	for _, id := range sortedKeys(r.Marketplaces) {
		m := r.Marketplaces[id]
		fmt.Fprintf(&b, "    %-9s postings %d, bids %d, duplicate_bids %d, ledger %s\n", id+":", m.Postings, m.Bids, m.Duplicates, kv(m.Ledger))
	}
	fmt.Fprintf(&b, "  parked:       %d before resume (%s); resumed %d (bidder ledger resume --all), all final %.1fs later\n",
		r.ParkedTotal, kv(r.Parked), r.Resumed, r.ResumeSeconds)
	for _, e := range r.ParkedExamples {
		fmt.Fprintf(&b, "    e.g. %s\n", e)
	}
	if r.Accounts != nil {
		fmt.Fprintf(&b, "  accounts:     %s\n", r.Accounts)
	}
	if r.Notify != nil {
		fmt.Fprintf(&b, "  notify:       %s\n", r.Notify)
		for _, e := range r.Notify.Examples {
			fmt.Fprintf(&b, "    missing %s\n", e)
		}
	}
	if r.Review != nil {
		fmt.Fprintf(&b, "  review:       %s\n", r.Review)
		for _, e := range r.Review.Examples {
			fmt.Fprintf(&b, "    e.g. %s\n", e)
		}
	}
	fmt.Fprintf(&b, "  waits:        unhandled %s (bidder_bid_tasks_unhandled_total); parked by workers %s; recovery enqueued %g\n",
		kv(r.Unhandled), kv(r.ParkedByWorkers), r.RecoveryEnqueued)
	fmt.Fprintf(&b, "  prevented:    %s (bidder_duplicates_prevented_total, summed over worker incarnations)\n", kv(r.DuplicatesPrevented))
	fmt.Fprintf(&b, "  reconciled:   %s (bidder_reconciliations_total)\n", kv(r.Reconciliations))
	fmt.Fprintf(&b, "  outcomes:     %s (bidder_bids_total as scraped; a killed incarnation's last second is lost)\n", kv(r.BidOutcomes))
	fmt.Fprintf(&b, "  drain:        %v in %.1fs (run %.1fs)\n", r.Drained, r.DrainSeconds, r.TotalSeconds)
	fmt.Fprintf(&b, "  locks left:   %d   archived bid tasks: %d   archived scans: %s\n", len(r.LocksLeft), len(r.Archived), kv(r.ArchivedScans))
	for _, a := range r.Archived {
		fmt.Fprintf(&b, "    archived %s/%s after %d retries: %s\n", a.Queue, a.ID, a.Retried, a.LastErr)
	}
	var names []string
	for k := range r.Exits {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "  exit %-10s %s\n", k+":", r.Exits[k])
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  NOTE: %s\n", n)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  FAILURE: %s\n", f)
	}
	if r.LogDir != "" {
		fmt.Fprintf(&b, "  logs:         %s (kept=%v)\n", r.LogDir, r.LogsKept)
	}
	return b.String()
}

// scraper keeps the last /metrics scrape of every worker incarnation, so
// counters of killed incarnations are not lost (up to one scrape interval).
type scraper struct {
	c       *http.Client
	workers []*Proc
	urls    []string
	mu      sync.Mutex
	last    map[string]map[string]float64 // "worker-1#3" -> series -> value
}

func newScraper(c *http.Client, workers []*Proc, urls []string) *scraper {
	return &scraper{c: c, workers: workers, urls: urls, last: map[string]map[string]float64{}}
}

func (s *scraper) loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Metrics the scraper and the long faults read off the workers.
const (
	metricDuplicates = "bidder_duplicates_prevented_total"
	metricPaused     = "bidder_worker_paused"
)

var scraped = []string{metricDuplicates, "bidder_reconciliations_total", "bidder_bids_total",
	"bidder_bid_tasks_unhandled_total", "bidder_postings_parked_total", "bidder_recovery_enqueued_total"}

func (s *scraper) once(ctx context.Context) {
	for i, w := range s.workers {
		if w.Stopped() {
			continue // it would only answer at its timeout
		}
		inc := w.Incarnation()
		m, err := ScrapeMetrics(ctx, s.c, s.urls[i]+"/metrics", scraped...)
		if err != nil || len(m) == 0 {
			continue
		}
		s.mu.Lock()
		s.last[fmt.Sprintf("%s#%d", w.Name, inc)] = m
		s.mu.Unlock()
	}
}

// current is the last scrape of w's running incarnation.
func (s *scraper) current(w *Proc) map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[fmt.Sprintf("%s#%d", w.Name, w.Incarnation())]
}

// fetch scrapes w now (and keeps it as its incarnation's last).
func (s *scraper) fetch(ctx context.Context, w *Proc) map[string]float64 {
	for i, x := range s.workers {
		if x != w {
			continue
		}
		m, err := ScrapeMetrics(ctx, s.c, s.urls[i]+"/metrics", scraped...)
		if err != nil {
			return nil
		}
		s.mu.Lock()
		s.last[fmt.Sprintf("%s#%d", w.Name, w.Incarnation())] = m
		s.mu.Unlock()
		return m
	}
	return nil
}

// sum adds metric name up over incarnations, by the value of label lbl.
func (s *scraper) sum(name, lbl string) map[string]float64 {
	out := map[string]float64{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.last {
		for series, v := range m {
			n, labels, _ := strings.Cut(series, "{")
			if n == name {
				out[label(labels, lbl)] += v
			}
		}
	}
	return out
}

// totals sums the series over incarnations by their first label value.
func (s *scraper) totals() (dups, recs, bids map[string]float64) {
	return s.sum(metricDuplicates, "layer"), s.sum("bidder_reconciliations_total", "result"), s.sum("bidder_bids_total", "outcome")
}

// newTotals sums the wait and recovery series over incarnations.
func (s *scraper) newTotals() (unhandled, parked map[string]float64, recovered float64) {
	for _, v := range s.sum("bidder_recovery_enqueued_total", "marketplace") {
		recovered += v
	}
	return s.sum("bidder_bid_tasks_unhandled_total", "reason"), s.sum("bidder_postings_parked_total", "reason"), recovered
}

func label(labels, name string) string {
	for _, part := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
		k, v, ok := strings.Cut(part, "=")
		if ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return "?"
}

// ScrapeMetrics fetches a Prometheus text page and returns the samples of
// the named metrics, keyed by "name{labels}".
func ScrapeMetrics(ctx context.Context, c *http.Client, url string, names ...string) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		for _, n := range names {
			if strings.HasPrefix(line, n+"{") || strings.HasPrefix(line, n+" ") {
				i := strings.LastIndexByte(line, ' ')
				v, err := strconv.ParseFloat(line[i+1:], 64)
				if err == nil {
					out[line[:i]] = v
				}
			}
		}
	}
	return out, sc.Err()
}
