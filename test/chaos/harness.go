package chaos

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

const sandboxToken = "chaos-token"

// Harness is one running chaos scenario.
type Harness struct {
	cfg    Config
	logDir string

	redisAddr string
	redis     *Proc         // standalone topology
	topo      *sentinelTopo // sentinel topology
	rdb       *redis.Client // the harness's own client (a failover client with sentinels)

	sandboxes  []*sandboxInst // sandboxes[0] is marketplace "sandbox"
	markets    []market       // bidder's marketplaces (setMarkets)
	adminToken string         // the sandboxes' outage switches (outage.go)
	cfgPath    string         // bidder.yaml: every marketplace (scanners, fleet A, the ledger CLI)

	workers   []*Proc
	workerURL []string // http://addr of each worker's /metrics
	fleet     []string // "A" or "B" per worker (TwoFleets), else ""
	proxies   []*Proxy
	scanners  []*Proc

	rng      *rand.Rand
	mu       sync.Mutex
	faults   map[string]int
	busy     map[any]bool
	faultLog []string
	copies   int
	scrape   *scraper
	http     *http.Client
	long     longState    // what the long faults saw (faults_long.go)
	sink     *webhookSink // Config.Notify: the webhook the workers notify
}

// sandboxInst is one sandbox process and the marketplace ID bidder knows it
// by.
type sandboxInst struct {
	id    string
	url   string
	admin string // its outage switch (harness only)
	proc  *Proc
}

// Run runs the scenario and returns its report. The error is non-nil when
// the run could not be carried out (a process would not start); a run that
// finds a violation returns a report with Passed false and Failures set.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if cfg.Topology != TopologyStandalone && cfg.Topology != TopologySentinel {
		return nil, fmt.Errorf("unknown topology %q (want %s or %s)", cfg.Topology, TopologyStandalone, TopologySentinel)
	}
	mix, dropped := cfg.topologyMix()
	cfg.Mix = mix
	if cfg.TwoFleets && cfg.Workers < 2 {
		return nil, fmt.Errorf("two fleets need at least 2 workers, got %d", cfg.Workers)
	}
	for _, sc := range cfg.Schedule {
		if !slices.Contains(longFaults[sc.Kind], sc.Variant) {
			return nil, fmt.Errorf("scheduled fault %s: unknown", sc)
		}
	}
	if cfg.RecoveryEvery == 0 {
		cfg.RecoveryEvery, cfg.RecoveryAfter = 10*time.Second, time.Minute
	}
	if cfg.SettleDelay <= cfg.RequestTimeout {
		return nil, fmt.Errorf("settle delay %s must exceed the adapter's request timeout %s", cfg.SettleDelay, cfg.RequestTimeout)
	}
	logDir := cfg.LogDir
	if logDir == "" {
		d, err := os.MkdirTemp("", "bidder-chaos-"+cfg.Scenario+"-")
		if err != nil {
			return nil, err
		}
		logDir = d
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	h := &Harness{
		cfg: cfg, logDir: logDir,
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0xc4a05)),
		faults: map[string]int{}, busy: map[any]bool{},
		http: &http.Client{Timeout: 5 * time.Second},
	}
	for k := range cfg.Mix {
		h.faults[k] = 0
	}
	rep := &Report{
		Scenario: cfg.Scenario, Seed: cfg.Seed, Workers: cfg.Workers, Scanners: cfg.Scanners,
		Concurrency: cfg.Concurrency, Persistence: cfg.Persistence, Mix: cfg.Mix.String(),
		Topology: cfg.Topology, Schedule: scheduleString(cfg.Schedule), MaxRetry: cfg.MaxRetry,
		SharedQueue:    cfg.SharedQueue,
		PublishSeconds: cfg.Duration.Seconds(), LockTTL: cfg.LockTTL.String(), SettleDelay: cfg.SettleDelay.String(),
		RequestTimeout: cfg.RequestTimeout.String(), LogDir: logDir,
		SandboxFaults: fmt.Sprintf("idempotency=off duplicates=accept latency=%s error=%g ambiguous=%g rate_limited=%g",
			cfg.SandboxLatency, cfg.ErrorRate, cfg.AmbiguousRate, cfg.RateLimitRate),
	}
	if cfg.Topology == TopologySentinel {
		rep.Replicas, rep.WaitReplicas = cfg.Replicas, cfg.WaitReplicas
		rep.note("topology sentinel: 1 master, %d replicas, 3 sentinels (quorum 2); ledger.wait_replicas=%d; "+
			"bidder reaches the sentinels directly, so there is no per-worker TCP proxy and no proxy fault", cfg.Replicas, cfg.WaitReplicas)
	}
	if len(dropped) > 0 {
		rep.note("faults not available in topology %s, dropped from the mix: %s", cfg.Topology, strings.Join(dropped, ", "))
	}
	if cfg.TwoFleets {
		rep.Fleets = fmt.Sprintf("fleet A: %d workers {%s, %s}; fleet B: %d workers {%s}, poll_interval %s",
			cfg.Workers-cfg.FleetB, marketplaceMain, marketplaceSecond, cfg.FleetB, marketplaceMain, cfg.FleetBPoll)
	}
	start := time.Now()
	defer h.stopAll()
	if err := h.start(); err != nil {
		return nil, fmt.Errorf("%w (logs in %s)", err, logDir)
	}
	h.run(ctx, rep)
	rep.TotalSeconds = time.Since(start).Seconds()
	rep.Passed = len(rep.Failures) == 0
	if rep.Passed {
		rep.LogsKept = false
	} else {
		rep.LogsKept = true
	}
	_ = os.WriteFile(filepath.Join(logDir, "faults.log"), []byte(strings.Join(h.faultLog, "\n")+"\n"), 0o644)
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(logDir, "report.json"), b, 0o644)
	}
	return rep, nil
}

// RemoveLogs deletes a passed run's log directory.
func (r *Report) RemoveLogs() {
	if r.Passed && r.LogDir != "" {
		_ = os.RemoveAll(r.LogDir)
		r.LogDir = ""
	}
}

func (h *Harness) start() error {
	if h.cfg.Topology == TopologySentinel {
		if err := h.startSentinelTopology(); err != nil {
			return err
		}
		return h.startRest()
	}
	return h.startStandalone()
}

func (h *Harness) startStandalone() error {
	cfg := h.cfg
	port, err := FreePort()
	if err != nil {
		return err
	}
	h.redisAddr = fmt.Sprintf("127.0.0.1:%d", port)
	dataDir := filepath.Join(h.logDir, "redis-data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	h.redis = newRedisProc(cfg.RedisBin, dataDir, h.logDir, port, cfg.Persistence)
	if err := startRedis(h.redis, h.redisAddr); err != nil {
		return err
	}
	h.rdb = redis.NewClient(&redis.Options{Addr: h.redisAddr, PoolSize: 8})
	return h.startRest()
}

// startRest starts the sandbox, the scanners and the workers (each worker
// behind its own proxy in the standalone topology).
func (h *Harness) startRest() error {
	cfg := h.cfg
	tok, err := randomToken()
	if err != nil {
		return err
	}
	h.adminToken = tok
	ids := []string{marketplaceMain}
	if cfg.TwoFleets {
		ids = append(ids, marketplaceSecond)
	}
	urls := map[string]string{}
	for i, id := range ids {
		// The second marketplace publishes a quarter of the first's
		// postings, from another seed: fleet B's detours (a 30 s wait
		// each) make each of its postings slower to decide.
		postings, rate := cfg.InitialPostings, cfg.Rate
		if i > 0 {
			postings, rate = postings/4, rate/4
		}
		sb, err := h.startSandbox(id, postings, rate, cfg.Seed+uint64(i))
		if err != nil {
			return err
		}
		urls[id] = sb.url
	}
	h.setMarkets()

	if cfg.Notify {
		sink, secretFile, slackFile, err := startWebhookSink(h.logDir)
		if err != nil {
			return err
		}
		h.sink = sink
		cfg.notifyURL, cfg.notifySecretFile, cfg.notifySlackFile = sink.url, secretFile, slackFile
	}
	h.cfgPath = filepath.Join(h.logDir, "bidder.yaml")
	var sentinels []string
	if h.topo != nil {
		sentinels = h.topo.addrs
	}
	if err := os.WriteFile(h.cfgPath, []byte(cfg.bidderYAML(ids, urls, sentinels...)), 0o644); err != nil {
		return err
	}
	cfgB := filepath.Join(h.logDir, "bidder-fleet-b.yaml")
	if cfg.TwoFleets {
		if err := os.WriteFile(cfgB, []byte(cfg.bidderYAMLPoll(cfg.FleetBPoll, ids[:1], urls, sentinels...)), 0o644); err != nil {
			return err
		}
	}
	cfgPath := h.cfgPath
	env := func(redisAddr string) []string {
		if h.topo != nil {
			// redis.sentinel in bidder.yaml; an inherited REDIS_URL or
			// REDIS_HOST would conflict with it (empty = unset).
			return h.cliEnv()
		}
		return append([]string{"REDIS_URL=redis://" + redisAddr + "/0", "BIDDER_CHAOS_SANDBOX_TOKEN=" + sandboxToken}, cfg.accountEnv()...)
	}
	for i := 0; i < cfg.Scanners; i++ {
		p := &Proc{Name: fmt.Sprintf("scanner-%d", i+1), Bin: cfg.BidderBin, Dir: h.logDir,
			Args: []string{"scanner", "--config", cfgPath, "--http-addr", "127.0.0.1:0"}, Env: env(h.redisAddr)}
		h.scanners = append(h.scanners, p)
	}
	for i := 0; i < cfg.Workers; i++ {
		redisAddr := h.redisAddr
		if h.topo == nil {
			px, err := NewProxy(h.redisAddr)
			if err != nil {
				return err
			}
			h.proxies = append(h.proxies, px)
			redisAddr = px.Addr()
		}
		hport, err := FreePort()
		if err != nil {
			return err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", hport)
		path, fleet := cfgPath, ""
		if cfg.TwoFleets {
			fleet = "A"
			if i >= cfg.Workers-cfg.FleetB {
				path, fleet = cfgB, "B"
			}
		}
		p := &Proc{Name: fmt.Sprintf("worker-%d", i+1), Bin: cfg.BidderBin, Dir: h.logDir,
			Args: []string{"worker", "--config", path, "--http-addr", addr}, Env: env(redisAddr)}
		h.workers = append(h.workers, p)
		h.workerURL = append(h.workerURL, "http://"+addr)
		h.fleet = append(h.fleet, fleet)
	}
	for _, p := range append(append([]*Proc{}, h.workers...), h.scanners...) {
		if err := p.Start(); err != nil {
			return err
		}
	}
	for i, u := range h.workerURL {
		if err := h.waitReady(u+"/readyz", 20*time.Second); err != nil {
			return fmt.Errorf("%s: %w", h.workers[i].Name, err)
		}
	}
	h.scrape = newScraper(h.http, h.workers, h.workerURL)
	return nil
}

// startSandbox starts the sandbox role for marketplace id, with its outage
// switch on a second loopback port.
func (h *Harness) startSandbox(id string, postings int, rate float64, seed uint64) (*sandboxInst, error) {
	cfg := h.cfg
	var addrs [2]string
	for i := range addrs {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	sargs := []string{
		AdminFlag, addrs[1],
		"--listen", addrs[0], "--tokens", cfg.sandboxTokens(), "--idempotency", "off", "--duplicates", "accept",
		"--latency", cfg.SandboxLatency, "--error-rate", fmt.Sprint(cfg.ErrorRate),
		"--ambiguous-rate", fmt.Sprint(cfg.AmbiguousRate), "--rate-limit-rate", fmt.Sprint(cfg.RateLimitRate),
		"--postings", fmt.Sprint(postings), "--rate", fmt.Sprint(rate), "--seed", fmt.Sprint(seed),
	}
	if cfg.Accounts != "" {
		sargs = append(sargs, "--decide-after", "2s", "--award-rate", "0.3")
	}
	name := "sandbox"
	if id != marketplaceMain {
		name = id
	}
	sb := &sandboxInst{id: id, url: "http://" + addrs[0], admin: addrs[1], proc: &Proc{Name: name, Bin: cfg.SelfBin, Dir: h.logDir,
		Env: []string{RoleEnv + "=sandbox", RoleArgsEnv + "=" + strings.Join(sargs, "\x1f"), AdminTokenEnv + "=" + h.adminToken}}}
	h.sandboxes = append(h.sandboxes, sb)
	if err := sb.proc.Start(); err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if err := waitTCP(a, 10*time.Second, sb.proc.exitedChan()); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return sb, nil
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := crand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func (h *Harness) waitReady(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		resp, err := h.http.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s (%v)", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *Harness) run(ctx context.Context, rep *Report) {
	cfg := h.cfg
	scrapeCtx, stopScrape := context.WithCancel(ctx)
	scrapeDone := make(chan struct{})
	go func() { h.scrape.loop(scrapeCtx, time.Second); close(scrapeDone) }()
	watchDone := make(chan struct{})
	if h.topo != nil {
		go func() { h.watchMaster(scrapeCtx); close(watchDone) }()
	} else {
		close(watchDone)
	}

	cfg.Logf("chaos %s: %d workers, %d scanners, publishing %s at %g/s after %d, faults %s, scheduled %s, logs %s",
		cfg.Scenario, cfg.Workers, cfg.Scanners, cfg.Duration, cfg.Rate, cfg.InitialPostings, cfg.Mix, scheduleString(cfg.Schedule), h.logDir)

	// Phase 1: publish and inject faults. Long faults run in the
	// background; the phase lasts until every one is over.
	var recov sync.WaitGroup
	phaseStart := time.Now()
	phaseEnd := phaseStart.Add(cfg.Duration)
	h.schedule(ctx, phaseStart, &recov)
	stopReview, reviewDone := make(chan struct{}), make(chan struct{})
	if cfg.ReviewShare > 0 {
		rep.Review = &ReviewReport{Actions: map[string]int{}, Answers: map[string]int{}}
		go func() { h.reviewers(ctx, rep.Review, stopReview); close(reviewDone) }()
	} else {
		close(reviewDone)
	}
	total := 0
	for _, w := range cfg.Mix {
		total += w
	}
	for total > 0 && time.Now().Before(phaseEnd) && ctx.Err() == nil {
		gap := time.Duration(float64(cfg.FaultInterval) * (0.5 + h.rng.Float64()))
		if time.Now().Add(gap).After(phaseEnd) {
			break
		}
		sleepCtx(ctx, gap)
		h.inject(ctx, h.pick(total), &recov)
	}
	sleepCtx(ctx, time.Until(phaseEnd))
	recov.Wait()
	close(stopReview)
	<-reviewDone
	h.healAll(ctx)

	// Phase 2: stop publishing, wait until every posting is final or
	// parked, resume the parked ones with the CLI, wait until every one is
	// final.
	for _, sb := range h.sandboxes {
		_ = sb.proc.Signal(syscall.SIGUSR1)
	}
	time.Sleep(300 * time.Millisecond) // the generators' last tick
	stopAt := time.Now()
	rep.PublishSeconds = stopAt.Sub(phaseStart).Seconds()
	posts := map[string][]Posting{} // by bidder's marketplace
	for _, sb := range h.sandboxes {
		ps, err := SandboxPostings(ctx, h.http, sb.url)
		if err != nil {
			rep.fail("could not list the postings of %s: %v", sb.id, err)
		}
		for _, m := range h.markets {
			if m.sb == sb {
				posts[m.id] = ps
			}
		}
		rep.Postings += len(ps)
	}
	cfg.Logf("chaos %s: publishing stopped at %d postings after %.0fs; faults %v; draining (timeout %s)", cfg.Scenario, rep.Postings, rep.PublishSeconds, h.faultCounts(), cfg.DrainTimeout)
	drained, why := h.drain(ctx, posts, cfg.DrainTimeout, true)
	rep.DrainSeconds = time.Since(stopAt).Seconds()
	rep.Drained = drained
	if !drained {
		rep.fail("not drained %s after publishing stopped: %s", cfg.DrainTimeout, why)
	}
	cfg.Logf("chaos %s: drained=%v in %.1fs", cfg.Scenario, drained, rep.DrainSeconds)
	if drained {
		resumeAt := time.Now()
		if rep.Review != nil {
			h.reviewRest(ctx, rep)
		}
		h.resumeParked(ctx, rep, posts)
		ok, why := h.drain(ctx, posts, cfg.DrainTimeout, false)
		rep.ResumeSeconds = time.Since(resumeAt).Seconds()
		if !ok {
			rep.Drained = false
			rep.fail("not every posting final %s after `bidder ledger resume`: %s", cfg.DrainTimeout, why)
		}
		cfg.Logf("chaos %s: parked %d, resumed %d, all final=%v %.1fs later", cfg.Scenario, rep.ParkedTotal, rep.Resumed, ok, rep.ResumeSeconds)
		if h.sink != nil {
			h.waitNotifications(ctx, rep, posts, NotifyWait)
			cfg.Logf("chaos %s: notifications: %s", cfg.Scenario, rep.Notify)
		}
		if cfg.Accounts != "" {
			// The tracker runs once a minute: two slots and a repoll.
			h.waitAccounts(ctx, rep, posts, AccountsWait)
			cfg.Logf("chaos %s: accounts: %s", cfg.Scenario, rep.Accounts)
		}
	}

	// Phase 3: final scrape, SIGTERM every bidder process, then check.
	h.scrape.once(ctx)
	stopScrape()
	<-scrapeDone
	<-watchDone
	rep.Exits = map[string]string{}
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, p := range append(append([]*Proc{}, h.workers...), h.scanners...) {
		wg.Add(1)
		go func(p *Proc) {
			defer wg.Done()
			code, err := p.Terminate(30 * time.Second)
			emu.Lock()
			defer emu.Unlock()
			if err != nil {
				rep.Exits[p.Name] = err.Error()
				rep.fail("%s (log %s)", err, filepath.Join(h.logDir, fmt.Sprintf("%s.%d.log", p.Name, p.Incarnation())))
			} else {
				rep.Exits[p.Name] = fmt.Sprintf("exit %d (incarnation %d)", code, p.Incarnation())
			}
		}(p)
	}
	wg.Wait()
	rep.Faults = h.faultCounts()
	rep.DuplicatesPrevented, rep.Reconciliations, rep.BidOutcomes = h.scrape.totals()
	rep.Unhandled, rep.ParkedByWorkers, rep.RecoveryEnqueued = h.scrape.newTotals()
	if h.topo != nil {
		h.topo.mu.Lock()
		rep.Failovers = append([]string{}, h.topo.failovers...)
		h.topo.mu.Unlock()
		rep.RedisNodes = h.topo.nodeRoles()
		if extra := rep.Faults["master_changes"] - rep.Faults["failovers"]; extra > 0 {
			rep.note("Sentinel changed the master %d time(s) without a kill_master (master_changes=%d, failovers=%d); see faults.log",
				extra, rep.Faults["master_changes"], rep.Faults["failovers"])
		}
	}
	if cfg.TwoFleets && cfg.SharedQueue && rep.Unhandled["unknown_marketplace"] == 0 {
		rep.note("two fleets on the shared queue, yet fleet B never left a %s task for fleet A (bidder_bid_tasks_unhandled_total{reason=\"unknown_marketplace\"} = 0)", marketplaceSecond)
	}
	h.check(ctx, rep, posts)
	if rep.Review != nil {
		h.checkReviews(ctx, rep, posts)
	}
	for _, sb := range h.sandboxes {
		if code, err := sb.proc.Terminate(10 * time.Second); err != nil {
			rep.fail("%v", err)
		} else {
			rep.Exits[sb.proc.Name] = fmt.Sprintf("exit %d", code)
		}
	}
}

func (h *Harness) faultCounts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for k, v := range h.faults {
		out[k] = v
	}
	return out
}

// cliEnv is the environment of a bidder CLI command against the run's
// Redis (directly, not through a worker's proxy).
func (h *Harness) cliEnv() []string {
	if h.topo != nil {
		return append([]string{"REDIS_URL=", "REDIS_HOST=", "BIDDER_CHAOS_SANDBOX_TOKEN=" + sandboxToken}, h.cfg.accountEnv()...)
	}
	return append([]string{"REDIS_URL=redis://" + h.redisAddr + "/0", "BIDDER_CHAOS_SANDBOX_TOKEN=" + sandboxToken}, h.cfg.accountEnv()...)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (h *Harness) pick(total int) string {
	n := h.rng.IntN(total)
	for _, k := range h.cfg.Mix.Names() {
		if n < h.cfg.Mix[k] {
			return k
		}
		n -= h.cfg.Mix[k]
	}
	return ""
}

// claim marks a process as under a fault; false if it already is.
// killAndRestart SIGKILLs p and starts it again after a moment, unless
// another fault holds it.
func (h *Harness) killAndRestart(wg *sync.WaitGroup, kind string, p *Proc, note string) {
	if !h.claim(p) {
		return
	}
	back := h.dur(200*time.Millisecond, 1500*time.Millisecond)
	p.Kill()
	h.record(kind, "%s%s, restart in %s", p.Name, note, back)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer h.release(p)
		time.Sleep(back)
		if err := p.Start(); err != nil {
			h.record("restart_error", "%s: %v", p.Name, err)
		}
	}()
}

func (h *Harness) claim(p any) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.busy[p] {
		return false
	}
	h.busy[p] = true
	return true
}

func (h *Harness) release(p any) {
	h.mu.Lock()
	delete(h.busy, p)
	h.mu.Unlock()
}

func (h *Harness) record(kind, format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults[kind]++
	h.faultLog = append(h.faultLog, time.Now().Format("15:04:05.000")+" "+kind+": "+fmt.Sprintf(format, args...))
}

func (h *Harness) dur(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(h.rng.Int64N(int64(hi-lo)+1))
}

// count adds n to a counter of the report (and logs, if format is set).
func (h *Harness) count(kind string, n int, format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults[kind] += n
	if format != "" {
		h.faultLog = append(h.faultLog, time.Now().Format("15:04:05.000")+" "+kind+": "+fmt.Sprintf(format, args...))
	}
}

// inject runs one fault; recovery happens in the background (tracked by wg).
func (h *Harness) inject(ctx context.Context, kind string, wg *sync.WaitGroup) {
	if _, ok := longFaults[kind]; ok {
		h.pickLong(ctx, kind, wg)
		return
	}
	i := h.rng.IntN(len(h.workers))
	w := h.workers[i]
	var px *Proxy
	if i < len(h.proxies) {
		px = h.proxies[i]
	}
	if px == nil && slices.Contains(proxyFaults, kind) {
		return // no proxy in this topology (topologyMix drops these)
	}
	switch kind {
	case FaultKillMaster:
		if h.topo != nil {
			h.killMaster(wg)
		}
	case FaultKillWorker:
		h.killAndRestart(wg, kind, w, " (pid was killed)")
	case FaultKillScanner:
		h.killAndRestart(wg, kind, h.scanners[h.rng.IntN(len(h.scanners))], "")
	case FaultStopWorker:
		if !h.claim(w) {
			return
		}
		d := h.dur(h.cfg.LockTTL*3/2, h.cfg.LockTTL*3)
		if err := w.Signal(syscall.SIGSTOP); err != nil {
			h.release(w)
			return
		}
		h.record(kind, "%s for %s", w.Name, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer h.release(w)
			// Once its locks have expired, hand its tasks to the others,
			// as asynq would after the lease; then wake it up.
			time.Sleep(h.cfg.LockTTL + 300*time.Millisecond)
			n := h.redeliver(true)
			h.count("redelivered_tasks", n, "%d task copies while %s is stopped", n, w.Name)
			time.Sleep(d - h.cfg.LockTTL - 300*time.Millisecond)
			_ = w.Signal(syscall.SIGCONT)
		}()
	case FaultKillRedis:
		if !h.claim(h.redis) {
			return
		}
		defer h.release(h.redis)
		down := h.dur(100*time.Millisecond, 1000*time.Millisecond)
		h.redis.Kill()
		h.record(kind, "down for %s, restart (persistence=%v)", down, h.cfg.Persistence)
		time.Sleep(down)
		if err := startRedis(h.redis, h.redisAddr); err != nil {
			h.record("restart_error", "redis: %v", err)
		}
	case FaultProxyLatency:
		if !h.claim(px) {
			return
		}
		lat := h.dur(20*time.Millisecond, 300*time.Millisecond)
		d := h.dur(time.Second, 4*time.Second)
		px.SetLatency(lat)
		h.record(kind, "%s: +%s per chunk for %s", w.Name, lat, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer h.release(px)
			time.Sleep(d)
			px.SetLatency(0)
		}()
	case FaultRedeliver:
		n := h.redeliver(false)
		h.record(kind, "%d copies of active and pending bid tasks", n)
		h.count("redelivered_tasks", n, "")
	case FaultProxyCut:
		n := px.Cut()
		h.record(kind, "%s: %d connections reset", w.Name, n)
	case FaultProxyBlackhole:
		if !h.claim(px) {
			return
		}
		d := h.dur(time.Second, 4*time.Second)
		px.Blackhole(d)
		h.record(kind, "%s: for %s", w.Name, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer h.release(px)
			time.Sleep(d)
		}()
	}
}

// redeliver enqueues a copy of every active (and, unless activeOnly,
// pending) bid task under a new task ID.
//
// Not while a freeze_worker_lease runs: there asynq itself must be the one
// that hands the frozen worker's tasks over.
func (h *Harness) redeliver(activeOnly bool) int {
	h.mu.Lock()
	freezing := h.busy[FaultFreezeWorkerLease]
	h.mu.Unlock()
	if freezing {
		h.count("redeliver_skipped_in_freeze", 1, "no task copies while a freeze_worker_lease runs")
		return 0
	}
	insp := asynq.NewInspectorFromRedisClient(h.rdb)
	var tasks []*asynq.TaskInfo
	for _, q := range h.bidQueues() {
		if a, err := insp.ListActiveTasks(q, asynq.PageSize(200)); err == nil {
			tasks = append(tasks, a...)
		}
		if !activeOnly {
			if p, err := insp.ListPendingTasks(q, asynq.PageSize(50)); err == nil {
				tasks = append(tasks, p...)
			}
		}
	}
	cl := asynq.NewClientFromRedisClient(h.rdb)
	n := 0
	for _, t := range tasks {
		h.mu.Lock()
		h.copies++
		id := fmt.Sprintf("%s:redeliver-%d", t.ID, h.copies)
		h.mu.Unlock()
		_, err := cl.Enqueue(asynq.NewTask(t.Type, t.Payload), asynq.Queue(t.Queue), asynq.TaskID(id), asynq.MaxRetry(25))
		if err == nil {
			n++
		}
	}
	return n
}

// healAll makes sure every process runs, every proxy forwards and no
// outage is on.
func (h *Harness) healAll(ctx context.Context) {
	for _, sb := range h.sandboxes {
		_, _ = h.setOutage(ctx, sb, 0, 1, false)
	}
	if h.topo != nil {
		for _, n := range h.topo.nodes {
			if n.proc.Stopped() {
				_ = n.proc.Signal(syscall.SIGCONT)
			}
		}
	}
	for _, px := range h.proxies {
		px.SetLatency(0)
		px.Blackhole(0)
	}
	for _, p := range append(append([]*Proc{}, h.workers...), h.scanners...) {
		if p.Running() {
			_ = p.Signal(syscall.SIGCONT)
		} else if err := p.Start(); err != nil {
			h.record("restart_error", "%s: %v", p.Name, err)
		}
	}
}

func (h *Harness) stopAll() {
	if h.sink != nil {
		h.sink.close()
	}
	for _, p := range append(append([]*Proc{}, h.workers...), h.scanners...) {
		if p.Running() {
			p.Kill()
		}
	}
	for _, sb := range h.sandboxes {
		if sb.proc.Running() {
			sb.proc.Kill()
		}
	}
	for _, px := range h.proxies {
		_ = px.Close()
	}
	if h.rdb != nil {
		_ = h.rdb.Close()
	}
	if h.redis != nil && h.redis.Running() {
		_, _ = h.redis.Terminate(10 * time.Second)
	}
	if h.topo != nil {
		h.topo.stop()
	}
}
