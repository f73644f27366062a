package httpserver

import (
	"cmp"
	"context"
	_ "embed"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// StatusSource returns what the status page shows, read from the state all
// instances share (the app reads it from Redis), with the history for the
// minutes from since to until. What it cannot read it reports in
// Status.Problems, and the page shows the rest.
type StatusSource func(ctx context.Context, since, until time.Time) Status

// Status is the shared state the page is drawn from.
type Status struct {
	Marketplaces []Marketplace
	Queues       []Queue
	Workers      []Worker // asynq servers with a live heartbeat
	// Conditions are what makes this process's own tasks wait (it is the
	// one thing on the page that is not cluster-wide).
	Conditions []Condition
	Problems   []string // one line each: what could not be read
}

// Marketplace is one marketplace's part of the shared state.
type Marketplace struct {
	ID string
	// Totals and History are counted under internal/history's metric
	// names: "placed", "dry_run", "parked", "skipped:<rule>",
	// "failed:<class>", "dup:<layer>" (a bare "skipped" or "failed": no
	// rule given). Totals run since the history began; History is per
	// minute.
	Totals      map[string]int64
	History     map[string][]Point
	Undecided   int64
	Parked      []Parked // oldest first, possibly only the oldest of ParkedTotal
	ParkedTotal int
	// Budgets: one per account with a bid budget (one with Account ""
	// for a marketplace with one account); none: no bid budget.
	Budgets []Budget
	Scan    *Scan // nil: not scanned yet
	Recent  []Decision
	// Reviews are postings waiting for a reviewer, nearest deadline first
	// (possibly only the first of ReviewTotal).
	Reviews     []Review
	ReviewTotal int
	// CanRetract: the adapter withdraws bids (a Retract button on placed
	// bids, with actions on).
	CanRetract bool
}

// Review is one posting in the review queue, with the bid proposed. Title,
// URL and Proposal come from the marketplace or a model: outside input,
// shown escaped.
type Review struct {
	Posting, Title, URL string
	Until               time.Time
	Amount              float64
	Currency, Proposal  string
	Reason              string
}

// Point is one minute's count.
type Point struct {
	Minute time.Time
	Count  int64
}

// Parked is one parked posting.
type Parked struct {
	Posting      string
	Since        time.Time
	Rule, Reason string
	HeldIntent   bool // a bid may exist; resuming reconciles first
}

// Budget is a marketplace's bid budget now, or in agency mode one
// account's (Account names it).
type Budget struct {
	Account           string
	HourLeft, DayLeft int // -1: that window has no limit
	Waits             []Wait
}

// Wait is how many postings wait for a budget window that opens at Opens.
type Wait struct {
	Opens    time.Time
	Postings int
}

// Scan is what a marketplace's last scan reported.
type Scan struct {
	At             time.Time // when it ended
	Result         string
	Seen, Enqueued int
	Newest         time.Time // posted_at of the newest posting seen; zero: none
}

// Decision is one of the latest decisions. Title and URL come from the
// marketplace: outside input, shown escaped.
type Decision struct {
	At                    time.Time
	Posting, Title, URL   string
	State, Currency, Rule string
	Amount                float64
}

// Queue is one asynq queue.
type Queue struct {
	Name                                                    string
	Size, Pending, Active, Scheduled, Retry, Archived, Done int
	Latency                                                 time.Duration
	Paused                                                  bool
}

// Worker is one asynq server (a worker process) with a live heartbeat.
type Worker struct {
	Host                string
	PID                 int
	Concurrency, Active int
	Queues              string
	Started             time.Time
	Status              string
}

// Condition is one of this process's wait conditions.
type Condition struct {
	Kind, Marketplace, Detail string
	Since                     time.Time
}

// History windows (?hours=).
const (
	DefaultHours = 6
	MaxHours     = 48
)

// page is the template's view of a Status.
type page struct {
	Info         map[string]string
	Ready        string
	ReadyOK      bool
	Generated    time.Time
	Hours        int
	Windows      []int
	Bucket       time.Duration
	Actions      bool
	Monitoring   bool
	Marketplaces []mpPage
	Queues       []Queue
	Workers      []Worker
	Conditions   []Condition
	Problems     []string
	Recent       []recentRow // every marketplace's, newest first
	Reviewing    bool        // some posting waits for a reviewer
}

// recentRows bounds the latest decisions shown.
const recentRows = 50

type recentRow struct {
	Marketplace string
	CanRetract  bool
	Decision
}

type mpPage struct {
	Marketplace
	Placed, Skipped, Failed, DryRun, ParkedEvents, Duplicates int64
	SkipReasons, FailClasses, DupLayers, ParkedReasons        []Count
	Outcomes                                                  []Count // outcome changes the tracker recorded, by outcome
	WinRate                                                   string  // awarded of awarded, rejected and no answer; "-" without any
	Charts                                                    []chart
	Quiet                                                     bool // nothing to draw in the window
}

// Count is one labelled count.
type Count struct {
	Label string
	Value int64
}

// window is the history the page asks for: whole buckets ending with the
// current one.
func window(now time.Time, hours int) (since, until time.Time, bucket time.Duration) {
	span := time.Duration(hours) * time.Hour
	bucket = bucketFor(span)
	until = now.Truncate(bucket).Add(bucket)
	return until.Add(-span), until, bucket
}

// buildPage turns the shared state into what the template shows.
func buildPage(st Status, now time.Time, hours int) page {
	since, until, bucket := window(now, hours)
	p := page{Generated: now, Hours: hours, Windows: []int{1, DefaultHours, 24, MaxHours}, Bucket: bucket,
		Queues: st.Queues, Workers: st.Workers, Conditions: st.Conditions, Problems: st.Problems}
	for _, m := range st.Marketplaces {
		mp := mpPage{Marketplace: m}
		for metric, n := range m.Totals {
			kind, label, _ := strings.Cut(metric, ":")
			switch kind {
			case "placed":
				mp.Placed += n
			case "dry_run":
				mp.DryRun += n
			case "parked":
				mp.ParkedEvents += n
			case "skipped":
				mp.Skipped += n
				mp.SkipReasons = append(mp.SkipReasons, Count{orNone(label), n})
			case "failed":
				mp.Failed += n
				mp.FailClasses = append(mp.FailClasses, Count{orNone(label), n})
			case "dup":
				mp.Duplicates += n
				mp.DupLayers = append(mp.DupLayers, Count{label, n})
			case "outcome":
				mp.Outcomes = append(mp.Outcomes, Count{label, n})
			}
		}
		mp.WinRate = winRate(m.Totals)
		p.Reviewing = p.Reviewing || m.ReviewTotal > 0
		reasons := map[string]int64{}
		for _, pk := range m.Parked {
			reasons[pk.Rule]++
		}
		for r, n := range reasons {
			mp.ParkedReasons = append(mp.ParkedReasons, Count{r, n})
		}
		for _, cs := range [][]Count{mp.SkipReasons, mp.FailClasses, mp.DupLayers, mp.ParkedReasons, mp.Outcomes} {
			sortCounts(cs)
		}
		mp.Charts = charts(m.ID, m.History, since, until, bucket)
		mp.Quiet = !slices.ContainsFunc(mp.Charts, func(c chart) bool { return c.Total > 0 })
		p.Marketplaces = append(p.Marketplaces, mp)
		for _, d := range m.Recent {
			p.Recent = append(p.Recent, recentRow{m.ID, m.CanRetract, d})
		}
	}
	slices.SortStableFunc(p.Recent, func(a, b recentRow) int { return b.At.Compare(a.At) })
	p.Recent = p.Recent[:min(len(p.Recent), recentRows)]
	return p
}

// winRate is the report's win rate over the history's outcome totals.
func winRate(totals map[string]int64) string {
	won := totals["outcome:awarded"]
	answered := won + totals["outcome:rejected"] + totals["outcome:no_answer"]
	if answered == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(won)/float64(answered), 'f', 1, 64) + "%"
}

func orNone(label string) string {
	if label == "" {
		return "(none given)"
	}
	return label
}

// sortCounts orders by count, largest first, then by label.
func sortCounts(cs []Count) {
	slices.SortFunc(cs, func(a, b Count) int {
		if c := cmp.Compare(b.Value, a.Value); c != 0 {
			return c
		}
		return strings.Compare(a.Label, b.Label)
	})
}

// hoursParam reads ?hours=, DefaultHours when absent or not a number,
// clamped to 1..MaxHours.
func hoursParam(r *http.Request) int {
	h, err := strconv.Atoi(r.URL.Query().Get("hours"))
	if err != nil {
		return DefaultHours
	}
	return min(max(h, 1), MaxHours)
}

// pageHeaders are on every page this package renders itself: no script may
// run (the page has none, and a title a marketplace sent must not bring
// one), forms post only here, and a posting's link does not tell its site
// where the operator came from.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	hours := hoursParam(r)
	var st Status
	if s.opts.Status != nil {
		since, until, _ := window(now, hours)
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		st = s.opts.Status(ctx, since, until)
		cancel()
	}
	p := buildPage(st, now, hours)
	p.Info, p.Actions, p.Monitoring = s.opts.Info, s.opts.Actions != nil, s.opts.Monitoring != nil
	p.Ready, p.ReadyOK = "ready", true
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		if err := s.opts.Ready(ctx); err != nil {
			p.Ready, p.ReadyOK = "not ready: "+oneLine(err.Error()), false
		}
		cancel()
	}
	pageHeaders(w)
	if err := statusPage.ExecuteTemplate(w, "status", p); err != nil {
		s.opts.Logger.Warn("status page", zapErr(err))
	}
}

//go:embed status.html
var statusHTML string

var statusPage = template.Must(template.New("").Funcs(template.FuncMap{
	"ts":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"ago": ago,
	"left": func(n int) string {
		if n < 0 {
			return "no limit"
		}
		return strconv.Itoa(n)
	},
	"amount": func(v float64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	},
	"dur": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"resumeForm": func(marketplaceID, postingID, reason string) resumeForm {
		return resumeForm{marketplaceID, postingID, reason}
	},
}).Parse(statusHTML))

// resumeForm is one Resume button: a posting, or every posting of a reason.
type resumeForm struct{ Marketplace, Posting, Reason string }

// ago is how long before now t was, to the second ("-" for a zero time).
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return "in " + (-d).String()
	}
	return d.String() + " ago"
}
