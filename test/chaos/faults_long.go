package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/worker"
)

// asynq's lease on an active task (a constant of asynq v0.26) and the age
// past its expiry at which its recoverer re-queues the task
// (asynq-facts.md). The recoverer runs at start and once a minute in every
// worker.
const (
	asynqLease       = 30 * time.Second
	asynqRecoverSkew = 30 * time.Second
)

// Scheduled is a long fault at a fixed offset into the fault phase.
type Scheduled struct {
	Kind    string        // FaultFreezeWorkerLease, FaultMarketplaceOutage, FaultReplicaDown
	Variant string        // see longFaults ("" = the kind's first)
	At      time.Duration // offset into the fault phase
	For     time.Duration // how long (0: the kind's default); freeze: the longest it may last
}

func (s Scheduled) String() string {
	k := s.Kind
	if s.Variant != "" {
		k += ":" + s.Variant
	}
	k += "@" + s.At.String()
	if s.For > 0 {
		k += "+" + s.For.String()
	}
	return k
}

func scheduleString(s []Scheduled) string {
	var parts []string
	for _, x := range s {
		parts = append(parts, x.String())
	}
	return strings.Join(parts, ",")
}

// ParseSchedule reads "kind[:variant]@offset[+duration],...", e.g.
// "freeze_worker_lease@2s,marketplace_outage:503-bids@20s+40s".
func ParseSchedule(s string) ([]Scheduled, error) {
	var out []Scheduled
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		head, when, ok := strings.Cut(part, "@")
		if !ok {
			return nil, fmt.Errorf("%q: want kind[:variant]@offset[+duration]", part)
		}
		kind, variant, _ := strings.Cut(head, ":")
		variants, ok := longFaults[kind]
		if !ok {
			return nil, fmt.Errorf("%q: %q is not a long fault (%s)", part, kind, strings.Join(sortedKeys(longFaults), ", "))
		}
		if variant == "" {
			variant = variants[0]
		}
		if !slices.Contains(variants, variant) {
			return nil, fmt.Errorf("%q: variant %q of %s unknown (%s)", part, variant, kind, strings.Join(variants, ", "))
		}
		at, dur, _ := strings.Cut(when, "+")
		sc := Scheduled{Kind: kind, Variant: variant}
		var err error
		if sc.At, err = time.ParseDuration(at); err != nil || sc.At < 0 {
			return nil, fmt.Errorf("%q: bad offset %q", part, at)
		}
		if dur != "" {
			if sc.For, err = time.ParseDuration(dur); err != nil || sc.For <= 0 {
				return nil, fmt.Errorf("%q: bad duration %q", part, dur)
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Outage variants: the status, the share of requests refused, and whether
// only the bid endpoints (POST .../bids, GET /v1/bids) are refused, so that
// scans go on discovering postings whose bids then meet the outage.
var outageVariants = map[string]struct {
	status   int
	rate     float64
	bidsOnly bool
}{
	"503":      {http.StatusServiceUnavailable, 1, false},
	"503-bids": {http.StatusServiceUnavailable, 1, true},
	"401":      {http.StatusUnauthorized, 1, false},
	"401-bids": {http.StatusUnauthorized, 1, true},
	"flaky":    {http.StatusServiceUnavailable, 0.6, false},
}

// longState collects what the long faults saw, for the report.
type longState struct {
	mu       sync.Mutex
	freezes  []*FreezeReport
	outages  []*OutageReport
	replicas []*ReplicaReport
}

// FreezeReport is one freeze_worker_lease.
type FreezeReport struct {
	Worker        string         `json:"worker"`
	At            string         `json:"at"`
	Missed        string         `json:"missed,omitempty"` // why no task was caught
	Tries         int            `json:"tries"`            // SIGSTOPs until one caught active bid tasks
	ActiveAtStop  int            `json:"active_bid_tasks_anywhere_at_stop"`
	Tasks         int            `json:"its_active_bid_tasks"` // still active, orphaned, when its lease had run out
	HandedOver    int            `json:"handed_over"`          // moved out of active by asynq's recoverer while it slept
	HandoverAfter float64        `json:"last_handover_after_s"`
	Decided       int            `json:"decided_while_frozen"` // their postings final (or parked) before SIGCONT
	FrozenSeconds float64        `json:"frozen_s"`
	WokenStopped  string         `json:"woken_prevented,omitempty"` // duplicates_prevented deltas of the woken worker, 15 s after SIGCONT
	WokenLog      map[string]int `json:"woken_log,omitempty"`       // its log lines about those tasks after SIGCONT, by level and message
	Postings      []string       `json:"postings"`                  // marketplace:posting of its tasks
	MaxBids       int            `json:"max_bids_per_posting"`      // checked after the run
}

func (f *FreezeReport) String() string {
	if f.Missed != "" {
		return fmt.Sprintf("%s at %s: missed (%s)", f.Worker, f.At, f.Missed)
	}
	return fmt.Sprintf("%s at %s (try %d): frozen %.1fs with %d of its bid tasks active (of %d active anywhere); asynq handed over %d (last after %.1fs), "+
		"%d decided by others while it slept; woken: prevented %s, said %s; bids per posting at most %d",
		f.Worker, f.At, f.Tries, f.FrozenSeconds, f.Tasks, f.ActiveAtStop, f.HandedOver, f.HandoverAfter, f.Decided, f.WokenStopped, kv(f.WokenLog), f.MaxBids)
}

// OutageReport is one marketplace_outage.
type OutageReport struct {
	Variant      string   `json:"variant"`
	At           string   `json:"at"`
	Seconds      float64  `json:"seconds"`
	Refused      int64    `json:"refused_requests"`
	PausedSeen   []string `json:"paused_seen"`       // worker=reason seen on /metrics (bidder_worker_paused)
	ParkedDuring int64    `json:"parked_during"`     // -1: unknown (Redis down when counted)
	ResumedAfter float64  `json:"first_bid_after_s"` // from the end of the outage; -1: none seen within 90 s
}

func (o *OutageReport) String() string {
	return fmt.Sprintf("%s at %s for %.1fs: %d requests refused; paused seen: %s; parked meanwhile: %d; first bid %.1fs after it ended",
		o.Variant, o.At, o.Seconds, o.Refused, orNone(o.PausedSeen), o.ParkedDuring, o.ResumedAfter)
}

// ReplicaReport is one replica_down.
type ReplicaReport struct {
	Node          string   `json:"node"`
	Variant       string   `json:"variant"`
	At            string   `json:"at"`
	Seconds       float64  `json:"down_s"`
	PausedSeen    []string `json:"paused_seen"`
	BidsWhileDown int64    `json:"bids_while_down"` // from 2 s after it went down until it came back
	OnlineAfter   float64  `json:"all_replicas_online_after_s"`
	ResumedAfter  float64  `json:"first_bid_after_s"` // from its return; -1: none within 90 s
	ParkedDuring  int64    `json:"parked_during"`     // -1: unknown
}

func (r *ReplicaReport) String() string {
	return fmt.Sprintf("%s %s at %s for %.1fs: bids while down %d; paused seen: %s; parked meanwhile: %d; replicas online %.1fs after its return, first bid %.1fs after it",
		r.Node, r.Variant, r.At, r.Seconds, r.BidsWhileDown, orNone(r.PausedSeen), r.ParkedDuring, r.OnlineAfter, r.ResumedAfter)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

// schedule starts the scheduled faults relative to start; wg tracks them.
func (h *Harness) schedule(ctx context.Context, start time.Time, wg *sync.WaitGroup) {
	for _, sc := range h.cfg.Schedule {
		d := sc.For
		wg.Add(1)
		go func() {
			defer wg.Done()
			sleepCtx(ctx, time.Until(start.Add(sc.At)))
			if ctx.Err() == nil {
				h.startLong(ctx, sc.Kind, sc.Variant, d, wg)
			}
		}()
	}
}

// pickLong is a long fault picked from the mix: a random variant and
// duration (from the injector's rng; called on its goroutine only).
func (h *Harness) pickLong(ctx context.Context, kind string, wg *sync.WaitGroup) {
	vs := longFaults[kind]
	v := vs[h.rng.IntN(len(vs))]
	var d time.Duration
	switch kind {
	case FaultMarketplaceOutage:
		d = h.dur(30*time.Second, 60*time.Second)
	case FaultReplicaDown:
		d = h.dur(40*time.Second, 60*time.Second)
	}
	h.startLong(ctx, kind, v, d, wg)
}

// startLong runs a long fault in the background unless one of its kind
// (for replica_down: anything on the sentinel topology) already runs.
func (h *Harness) startLong(ctx context.Context, kind, variant string, d time.Duration, wg *sync.WaitGroup) {
	token := kind
	if kind == FaultReplicaDown {
		token = sentinelToken
	}
	if !h.claim(token) {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer h.release(token)
		switch kind {
		case FaultFreezeWorkerLease:
			h.freezeWorkerLease(ctx, cmp(d, 150*time.Second))
		case FaultMarketplaceOutage:
			h.marketplaceOutage(ctx, variant, cmp(d, 40*time.Second))
		case FaultReplicaDown:
			if h.topo != nil {
				h.replicaDown(ctx, variant, cmp(d, 45*time.Second))
			}
		}
	}()
}

func cmp(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// activeBidTasks lists the active bid tasks of every bid queue.
func (h *Harness) activeBidTasks(insp *asynq.Inspector) map[string]*asynq.TaskInfo {
	out := map[string]*asynq.TaskInfo{}
	for _, q := range h.bidQueues() {
		for page := 1; ; page++ {
			ts, err := insp.ListActiveTasks(q, asynq.PageSize(500), asynq.Page(page))
			if err != nil {
				break
			}
			for _, t := range ts {
				out[q+"/"+t.ID] = t
			}
			if len(ts) < 500 {
				break
			}
		}
	}
	return out
}

// freezeWorkerLease SIGSTOPs a worker that asynq says is running bid
// tasks, and keeps it stopped until asynq itself has handed those tasks to
// other workers (its lease ran out, a recoverer re-queued them) and they
// were decided, or until maxFrozen. Then SIGCONT: the woken worker's
// handlers go on mid-bid with a lock whose lease ran out by their monotonic
// clock, and the fence refuses their writes. No harness copies.
func (h *Harness) freezeWorkerLease(ctx context.Context, maxFrozen time.Duration) {
	insp := asynq.NewInspectorFromRedisClient(h.rdb)
	rep := &FreezeReport{At: time.Now().Format("15:04:05.000")}
	defer func() {
		h.long.mu.Lock()
		h.long.freezes = append(h.long.freezes, rep)
		h.long.mu.Unlock()
	}()
	// Catch a worker mid-bid: SIGSTOP one while bid tasks are active. The
	// tasks active then and still active 3 s later are its own (a running
	// worker's attempt takes far less: waits are retries, not sleeps). If
	// there are none, wake it (it slept like a short stop_worker) and try
	// another moment.
	rng := rand.New(rand.NewPCG(h.cfg.Seed, 0xf4ee2e))
	var w *Proc
	var atStop map[string]*asynq.TaskInfo
	var t0 time.Time
	for deadline := time.Now().Add(60 * time.Second); ; {
		if time.Now().After(deadline) || ctx.Err() != nil {
			rep.Worker, rep.Missed = "-", fmt.Sprintf("no worker caught with an active bid task in 60 s (%d tries)", rep.Tries)
			h.record(FaultFreezeWorkerLease+"_missed", "%s", rep.Missed)
			return
		}
		if len(h.activeBidTasks(insp)) < 2 {
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		p := h.workers[rng.IntN(len(h.workers))]
		if !p.Running() || p.Stopped() || !h.claim(p) {
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		}
		if p.Signal(syscall.SIGSTOP) != nil {
			h.release(p)
			continue
		}
		rep.Tries++
		t0 = time.Now()
		rep.At = t0.Format("15:04:05.000")
		stopped := h.activeBidTasks(insp)
		rep.ActiveAtStop = len(stopped)
		sleepCtx(ctx, 3*time.Second)
		atStop = h.heldSince(ctx, t0, stopped, h.activeBidTasks(insp))
		if len(atStop) > 0 {
			w = p
			break
		}
		_ = p.Signal(syscall.SIGCONT)
		h.release(p)
	}
	defer h.release(w)
	rep.Worker = w.Name
	h.record(FaultFreezeWorkerLease, "%s SIGSTOPped (try %d) with %d bid tasks active anywhere; waiting out asynq's %s lease", w.Name, rep.Tries, len(atStop), asynqLease)

	// Its tasks are those active when it stopped and still active, their
	// lease expired, once the lease has run out: every running worker
	// finishes or extends its own meanwhile.
	sleepCtx(ctx, time.Until(t0.Add(asynqLease+5*time.Second)))
	mine := map[string]*asynq.TaskInfo{}
	for k, t := range h.activeBidTasks(insp) {
		if _, ok := atStop[k]; ok && t.IsOrphaned {
			mine[k] = t
		}
	}
	rep.Tasks = len(mine)
	if len(mine) == 0 {
		rep.Missed = "none of the tasks active when it stopped was still its own when the lease ran out"
		_ = w.Signal(syscall.SIGCONT)
		rep.FrozenSeconds = time.Since(t0).Seconds()
		h.record(FaultFreezeWorkerLease+"_missed", "%s: %s; SIGCONT after %.1fs", w.Name, rep.Missed, rep.FrozenSeconds)
		return
	}
	type posting struct{ mp, id string }
	posts := map[string]posting{}
	for k, t := range mine {
		if p, err := worker.DecodeBidPayload(t.Payload); err == nil {
			posts[k] = posting{p.MarketplaceID, p.ID}
			rep.Postings = append(rep.Postings, p.MarketplaceID+":"+p.ID)
		}
	}
	sort.Strings(rep.Postings)
	h.record(FaultFreezeWorkerLease+"_tasks", "%s: %d of its bid tasks active with an expired lease: %s", w.Name, len(mine), strings.Join(rep.Postings, " "))

	handed := map[string]bool{}
	for time.Since(t0) < maxFrozen && ctx.Err() == nil {
		active := h.activeBidTasks(insp)
		for k := range mine {
			if _, ok := active[k]; !ok && !handed[k] {
				handed[k] = true
				rep.HandoverAfter = time.Since(t0).Seconds()
			}
		}
		decided := 0
		for _, p := range posts {
			if st, _ := h.ledgerState(ctx, p.mp, p.id); isFinal(st) || st == stateParked {
				decided++
			}
		}
		rep.HandedOver, rep.Decided = len(handed), decided
		if len(handed) == len(mine) && decided == len(posts) {
			break
		}
		sleepCtx(ctx, time.Second)
	}
	before := h.scrape.current(w)
	logPath := filepath.Join(w.Dir, fmt.Sprintf("%s.%d.log", w.Name, w.Incarnation()))
	var logOff int64
	if fi, err := os.Stat(logPath); err == nil {
		logOff = fi.Size()
	}
	_ = w.Signal(syscall.SIGCONT)
	rep.FrozenSeconds = time.Since(t0).Seconds()
	h.record(FaultFreezeWorkerLease+"_woken", "%s SIGCONT after %.1fs: %d/%d handed over by asynq, %d decided meanwhile",
		w.Name, rep.FrozenSeconds, rep.HandedOver, rep.Tasks, rep.Decided)
	// What the woken handlers ran into: the lock layer (Check refused: the
	// lease ran out by the monotonic clock) or the fence (a write refused).
	sleepCtx(ctx, 15*time.Second)
	var parts []string
	if after := h.scrape.fetch(ctx, w); after != nil && before != nil {
		for _, l := range []string{"lock", "fence", "ledger"} {
			k := metricDuplicates + `{layer="` + l + `"}`
			parts = append(parts, fmt.Sprintf("%s+%g", l, after[k]-before[k]))
		}
	} else {
		parts = append(parts, "metrics not scraped")
	}
	rep.WokenStopped = strings.Join(parts, " ")
	var ids []string
	for k, t := range mine {
		ids = append(ids, t.ID, `"posting":"`+posts[k].id+`"`)
	}
	rep.WokenLog = wokenLog(logPath, logOff, ids)
}

// wokenLog counts the messages of the log lines after offset that mention
// one of the needles (the frozen tasks' IDs and postings): what the woken
// worker's handlers and asynq said about them.
func wokenLog(path string, offset int64, needles []string) map[string]int {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !slices.ContainsFunc(needles, func(n string) bool { return strings.Contains(line, n) }) {
			continue
		}
		var l struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			l.Msg = line
		}
		out[l.Level+": "+l.Msg]++
	}
	return out
}

// marketplaceOutage switches the main sandbox's outage on for d, watches
// the workers' bidder_worker_paused meanwhile, and then how long bidding
// takes to come back.
func (h *Harness) marketplaceOutage(ctx context.Context, variant string, d time.Duration) {
	v := outageVariants[variant]
	sb := h.sandboxes[0]
	rep := &OutageReport{Variant: variant, At: time.Now().Format("15:04:05.000"), ResumedAfter: -1}
	defer func() {
		h.long.mu.Lock()
		h.long.outages = append(h.long.outages, rep)
		h.long.mu.Unlock()
	}()
	parked0 := h.parkedCount(ctx)
	if _, err := h.setOutage(ctx, sb, v.status, v.rate, v.bidsOnly); err != nil {
		h.record("outage_error", "%v", err)
		return
	}
	start := time.Now()
	h.record(FaultMarketplaceOutage, "%s: %s for %s", sb.id, variant, d)
	seen := h.watchPaused(ctx, d)
	st, err := h.setOutage(ctx, sb, 0, 1, false)
	end := time.Now()
	rep.Seconds = end.Sub(start).Seconds()
	if err != nil {
		h.record("outage_error", "ending it: %v", err)
	}
	rep.Refused = st.Refused
	rep.PausedSeen = seen
	rep.ParkedDuring = delta(parked0, h.parkedCount(ctx))
	h.count(FaultMarketplaceOutage+"_over", 1, "%s: %s over after %.1fs, %d requests refused, paused seen: %s", sb.id, variant, rep.Seconds, st.Refused, orNone(seen))
	rep.ResumedAfter = h.firstBidAfter(ctx, sb, end, 90*time.Second)
}

// setOutage calls the sandbox role's outage switch.
func (h *Harness) setOutage(ctx context.Context, sb *sandboxInst, status int, rate float64, bidsOnly bool) (OutageState, error) {
	return SetOutage(ctx, h.http, sb.admin, h.adminToken, status, rate, bidsOnly)
}

// firstBidAfter polls the sandbox's bid count from `from` until it grows
// and returns how long after `from` that was (-1: not within d).
func (h *Harness) firstBidAfter(ctx context.Context, sb *sandboxInst, from time.Time, d time.Duration) float64 {
	st0, err := SandboxStatsOf(ctx, h.http, sb.url)
	if err != nil {
		return -1
	}
	for time.Since(from) < d && ctx.Err() == nil {
		sleepCtx(ctx, 250*time.Millisecond)
		if st, err := SandboxStatsOf(ctx, h.http, sb.url); err == nil && st.Bids > st0.Bids {
			return time.Since(from).Seconds()
		}
	}
	return -1
}

// watchPaused polls every worker's /metrics for d and returns each
// worker=reason whose bidder_worker_paused was 1 at least once.
func (h *Harness) watchPaused(ctx context.Context, d time.Duration) []string {
	seen := map[string]bool{}
	c := &http.Client{Timeout: time.Second}
	for end := time.Now().Add(d); time.Now().Before(end) && ctx.Err() == nil; {
		for i, u := range h.workerURL {
			if h.workers[i].Stopped() || !h.workers[i].Running() {
				continue
			}
			m, err := ScrapeMetrics(ctx, c, u+"/metrics", metricPaused)
			if err != nil {
				continue
			}
			for series, v := range m {
				if v == 1 {
					_, labels, _ := strings.Cut(series, "{")
					seen[h.workers[i].Name+"="+label(labels, "reason")] = true
				}
			}
		}
		sleepCtx(ctx, min(500*time.Millisecond, time.Until(end)))
	}
	return sortedKeys(seen)
}

// replicaDown stops (SIGSTOP) or kills one replica for d, then brings it
// back (SIGCONT, or a restart as a replica of the current master). With
// ledger.wait_replicas = every replica no intent is acknowledged
// meanwhile: no bid may go out, bidder_worker_paused{reason=
// "replicas_short"} must show, nothing may be parked for it, and bidding
// must resume once the replica is back.
func (h *Harness) replicaDown(ctx context.Context, variant string, d time.Duration) {
	t := h.topo
	rep := &ReplicaReport{Variant: variant, At: time.Now().Format("15:04:05.000"), ResumedAfter: -1, OnlineAfter: -1}
	defer func() {
		h.long.mu.Lock()
		h.long.replicas = append(h.long.replicas, rep)
		h.long.mu.Unlock()
	}()
	master := t.node(t.masterPort())
	var n *redisNode
	for _, x := range t.nodes {
		if x != master && x.proc.Running() && !x.proc.Stopped() {
			n = x
			break
		}
	}
	if master == nil || n == nil {
		rep.Node = "-"
		h.record(FaultReplicaDown+"_missed", "no master or no running replica")
		return
	}
	rep.Node = n.proc.Name
	sb := h.sandboxes[0]
	parked0 := h.parkedCount(ctx)
	if variant == "kill" {
		n.proc.Kill()
	} else if err := n.proc.Signal(syscall.SIGSTOP); err != nil {
		h.record(FaultReplicaDown+"_missed", "%v", err)
		return
	}
	start := time.Now()
	h.record(FaultReplicaDown, "%s (%s) %s for %s", n.proc.Name, n.addr, variant, d)
	// Bids in flight when it went down may still land: count from 2 s on.
	seenCh := make(chan []string, 1)
	go func() { seenCh <- h.watchPaused(ctx, d) }()
	sleepCtx(ctx, 2*time.Second)
	st0, err0 := SandboxStatsOf(ctx, h.http, sb.url)
	sleepCtx(ctx, time.Until(start.Add(d)))
	st1, err1 := SandboxStatsOf(ctx, h.http, sb.url)
	if err0 == nil && err1 == nil {
		rep.BidsWhileDown = st1.Bids - st0.Bids
	}
	rep.PausedSeen = <-seenCh
	if variant == "kill" {
		m := t.node(t.masterPort())
		if m == nil {
			m = master
		}
		n.proc.Args = replicaArgs(n.base, m.port)
		if err := startRedis(n.proc, n.addr); err != nil {
			h.record("restart_error", "%s: %v", n.proc.Name, err)
		}
	} else {
		_ = n.proc.Signal(syscall.SIGCONT)
	}
	back := time.Now()
	rep.Seconds = back.Sub(start).Seconds()
	if _, err := t.waitMasterOnline(h.cfg.Replicas, 60*time.Second); err != nil {
		h.record("resync_slow", "%v", err)
	} else {
		rep.OnlineAfter = time.Since(back).Seconds()
	}
	rep.ParkedDuring = delta(parked0, h.parkedCount(ctx))
	h.count(FaultReplicaDown+"_over", 1, "%s back after %.1fs; %d bids while down; paused seen: %s", n.proc.Name, rep.Seconds, rep.BidsWhileDown, orNone(rep.PausedSeen))
	rep.ResumedAfter = h.firstBidAfter(ctx, sb, back, 90*time.Second)
}

// parkedCount is the number of parked postings of every marketplace (the
// ledger's parked indexes).
// (Redis may be down for a moment: kill_redis; it asks again for up to
// 10 s, then answers -1.)
func (h *Harness) parkedCount(ctx context.Context) int64 {
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int64
		var err error
		for _, m := range h.markets {
			c, e := h.rdb.ZCard(ctx, parkedIndexKey(m.id)).Result()
			n, err = n+c, errors.Join(err, e)
		}
		if err == nil {
			return n
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return -1
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// delta is after-before, or -1 if either is unknown (-1).
func delta(before, after int64) int64 {
	if before < 0 || after < 0 {
		return -1
	}
	return after - before
}

// heldSince keeps the tasks of stopped that are still active (in now) and
// whose asynq lease was extended within the heartbeat (5 s) before t0, the
// moment a worker was SIGSTOPped: its own tasks. A task of a worker killed
// earlier has an older lease (asynq keeps it active until a recoverer moves
// it) and is left out; one killed less than 6 s before t0 cannot be told
// apart.
func (h *Harness) heldSince(ctx context.Context, t0 time.Time, stopped, now map[string]*asynq.TaskInfo) map[string]*asynq.TaskInfo {
	out := map[string]*asynq.TaskInfo{}
	for k, t := range stopped {
		if _, ok := now[k]; !ok {
			continue
		}
		// asynq v0.26: lease expiry in Unix seconds, last heartbeat + 30 s.
		exp, err := h.rdb.ZScore(ctx, "asynq:{"+t.Queue+"}:lease", t.ID).Result()
		if err == nil && int64(exp) >= t0.Add(asynqLease-6*time.Second).Unix() {
			out[k] = t
		}
	}
	return out
}

// checkLong turns what the long faults saw into failures and notes.
func (h *Harness) checkLong(ctx context.Context, rep *Report) {
	h.long.mu.Lock()
	defer h.long.mu.Unlock()
	for _, f := range h.long.freezes {
		if f.Missed == "" {
			for _, p := range f.Postings {
				mp, id, _ := strings.Cut(p, ":")
				if sb := h.sandboxByID(mp); sb != nil {
					if n, err := SandboxBidsOn(ctx, h.http, sb.url, id); err == nil {
						f.MaxBids = max(f.MaxBids, n)
					}
				}
			}
			if f.MaxBids > 1 {
				rep.fail("freeze_worker_lease %s: a posting of its tasks has %d bids", f.Worker, f.MaxBids)
			}
			if f.HandedOver < f.Tasks {
				rep.note("freeze_worker_lease %s: asynq handed over only %d of its %d tasks within %.0fs", f.Worker, f.HandedOver, f.Tasks, f.FrozenSeconds)
			}
		} else {
			rep.note("freeze_worker_lease missed: %s", f.Missed)
		}
		rep.Freezes = append(rep.Freezes, *f)
	}
	for _, o := range h.long.outages {
		want := map[int]string{http.StatusServiceUnavailable: worker.CondMarketplaceDown, http.StatusUnauthorized: worker.CondUnauthorized}[outageVariants[o.Variant].status]
		if !seenReason(o.PausedSeen, want) {
			f := rep.note
			if outageVariants[o.Variant].bidsOnly {
				// Scans go on, so bids meet the outage: a worker must pause.
				f = rep.fail
			}
			f("marketplace_outage %s: no worker showed bidder_worker_paused{reason=%q} during it", o.Variant, want)
		}
		rep.Outages = append(rep.Outages, *o)
	}
	for _, r := range h.long.replicas {
		if r.Node == "-" {
			continue
		}
		if r.BidsWhileDown != 0 && h.cfg.WaitReplicas >= h.cfg.Replicas {
			rep.fail("replica_down %s: %d bids went out while a replica was down with ledger.wait_replicas=%d", r.Node, r.BidsWhileDown, h.cfg.WaitReplicas)
		}
		if h.cfg.WaitReplicas >= h.cfg.Replicas && !seenReason(r.PausedSeen, worker.CondReplicasShort) {
			rep.fail("replica_down %s: no worker showed bidder_worker_paused{reason=%q} while it was down", r.Node, worker.CondReplicasShort)
		}
		if r.ResumedAfter < 0 {
			rep.note("replica_down %s: no bid within 90 s of its return (nothing left to bid on?)", r.Node)
		}
		rep.ReplicaDowns = append(rep.ReplicaDowns, *r)
	}
}

func seenReason(seen []string, reason string) bool {
	for _, s := range seen {
		if strings.HasSuffix(s, "="+reason) {
			return true
		}
	}
	return false
}
