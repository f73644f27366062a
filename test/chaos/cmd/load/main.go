// Command load measures bidder end to end against one real Redis, all as
// OS processes on loopback, and writes docs-ready figures and PNG charts:
//
//   - throughput from enqueue to placed bid for 1, 2 and 4 `bidder worker`
//     processes, next to the naive handler a user would otherwise write
//     (decode the task, POST the bid: no lock, no ledger) and a no-op asynq
//     handler (same queue, concurrency, process count) in the same run:
//     the baseline and the ceiling;
//
//   - Redis commands per placed bid (INFO commandstats, which counts the
//     commands run inside Lua too, and MONITOR, which tells top-level calls
//     from calls inside scripts), minus the no-op run's per-task count;
//
//   - bytes of Redis memory per ledger record and per held lock (MEMORY USAGE);
//
//   - worker RSS at load (/proc/<pid>/status VmRSS);
//
//   - p50/p99 from posting publication to placed bid, with the sandbox's
//     1-50 ms latency on and two scanners on a 1 s schedule.
//
//     go run ./test/chaos/cmd/load --out docs/img --json /tmp/load.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/test/chaos"
	"github.com/bidder/bidder/worker"
)

type result struct {
	Machine   string             `json:"machine"`
	Tasks     int                `json:"tasks_per_run"`
	Conc      int                `json:"concurrency_per_process"`
	Pipeline  map[int]float64    `json:"pipeline_per_s"` // by worker processes
	Noop      map[int]float64    `json:"noop_asynq_per_s"`
	Naive     map[int]float64    `json:"naive_per_s"`
	Ratio     map[int]float64    `json:"ratio"`   // pipeline / no-op
	NaiveX    map[int]float64    `json:"x_naive"` // pipeline / naive
	RSSKiB    map[int]int        `json:"max_worker_rss_kib"`
	CmdStats  map[string]float64 `json:"commandstats_per_bid"`
	NoopStats map[string]float64 `json:"noop_commandstats_per_task"`
	TopLevel  map[string]float64 `json:"top_level_per_bid"`
	FromLua   map[string]float64 `json:"inside_lua_per_bid"`
	NoopTop   map[string]float64 `json:"noop_top_level_per_task"`
	Beyond    float64            `json:"top_level_beyond_asynq_per_bid"`
	AllBeyond float64            `json:"all_commands_beyond_asynq_per_bid"`
	LockBytes float64            `json:"bytes_per_held_lock"`
	FenceB    float64            `json:"bytes_per_fence_counter"`
	LedgerB   float64            `json:"bytes_per_ledger_record"`
	P50       float64            `json:"publication_to_bid_ms_p50"`
	P99       float64            `json:"publication_to_bid_ms_p99"`
	LatN      int                `json:"latency_samples"`
	Latencies []float64          `json:"-"`
	Targets   []string           `json:"targets"`
}

var (
	tasks   = flag.Int("tasks", 12000, "bid tasks per throughput run")
	conc    = flag.Int("concurrency", 32, "worker.concurrency (and the no-op server's) per process")
	outDir  = flag.String("out", "docs/img", "directory for the PNG charts")
	jsonP   = flag.String("json", "", "write the figures as JSON")
	latSec  = flag.Duration("latency-run", 20*time.Second, "publishing time of the latency run")
	latRate = flag.Float64("latency-rate", 100, "postings/s of the latency run")
	bidderB = flag.String("bidder", "", "bidder binary (default: go build ./cmd/bidder)")
	logDir  = flag.String("logs", "", "log directory (default: temp, removed on success)")
)

func main() {
	chaos.RunRole()
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type env struct {
	self, bidder, logs, redisAddr string
	redis                         *chaos.Proc
	rdb                           *redis.Client
	procs                         []*chaos.Proc
}

func (e *env) start(p *chaos.Proc) error {
	e.procs = append(e.procs, p)
	return p.Start()
}

func (e *env) stopAll() {
	for _, p := range e.procs {
		if p.Running() {
			_, _ = p.Terminate(15 * time.Second)
		}
	}
	e.procs = nil
}

func logf(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }

func run() error {
	ctx := context.Background()
	e := &env{}
	var err error
	if e.self, err = os.Executable(); err != nil {
		return err
	}
	e.logs = *logDir
	if e.logs == "" {
		if e.logs, err = os.MkdirTemp("", "bidder-load-"); err != nil {
			return err
		}
	}
	_ = os.MkdirAll(e.logs, 0o755)
	e.bidder = *bidderB
	if e.bidder == "" {
		e.bidder = filepath.Join(e.logs, "bidder")
		if out, err := exec.Command("go", "build", "-o", e.bidder, "github.com/bidder/bidder/cmd/bidder").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/bidder: %v\n%s", err, out)
		}
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		return err
	}
	port, _ := chaos.FreePort()
	e.redisAddr = fmt.Sprintf("127.0.0.1:%d", port)
	_ = os.MkdirAll(filepath.Join(e.logs, "redis-data"), 0o755)
	e.redis = chaos.NewRedisProc(redisBin, filepath.Join(e.logs, "redis-data"), e.logs, port, false)
	if err := chaos.StartRedis(e.redis, e.redisAddr); err != nil {
		return err
	}
	defer e.redis.Terminate(10 * time.Second)
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redisAddr})
	defer e.rdb.Close()
	defer e.stopAll()

	r := &result{Tasks: *tasks, Conc: *conc, Pipeline: map[int]float64{}, Noop: map[int]float64{}, Naive: map[int]float64{},
		Ratio: map[int]float64{}, NaiveX: map[int]float64{}, RSSKiB: map[int]int{}}
	r.Machine = machine()

	// Throughput: sandbox without latency or faults (the pipeline's own cost).
	for _, n := range []int{1, 2, 4} {
		// Interleaved: naive, pipeline, no-op, one right after the other.
		naive, _, err := e.throughput(ctx, n, *tasks, modeNaive, nil, r)
		if err != nil {
			return err
		}
		r.Naive[n] = naive
		rate, _, err := e.throughput(ctx, n, *tasks, modePipeline, nil, r)
		if err != nil {
			return err
		}
		r.Pipeline[n] = rate
		nrate, _, err := e.throughput(ctx, n, *tasks, modeNoop, nil, r)
		if err != nil {
			return err
		}
		r.Noop[n] = nrate
		r.Ratio[n] = rate / nrate
		r.NaiveX[n] = rate / naive
		logf("%d worker process(es): pipeline %.0f/s, naive %.0f/s (x_naive %.2f), no-op asynq %.0f/s (%.2fx)", n, rate, naive, rate/naive, nrate, rate/nrate)
	}

	// Commands per bid: one worker process, smaller run, counted twice.
	const acct = 2000
	var pipe, noop accounting
	if _, _, err := e.throughput(ctx, 1, acct, modeNoop, &noop, r); err != nil {
		return err
	}
	// Last, so that its ledger records are there for the memory figures.
	if _, _, err := e.throughput(ctx, 1, acct, modePipeline, &pipe, r); err != nil {
		return err
	}
	r.CmdStats, r.NoopStats = perTask(pipe.cmdstats, acct), perTask(noop.cmdstats, acct)
	r.TopLevel, r.FromLua, r.NoopTop = perTask(pipe.top, acct), perTask(pipe.lua, acct), perTask(noop.top, acct)
	r.Beyond = (float64(chaos.Total(pipe.top)) - float64(chaos.Total(noop.top))) / acct
	r.AllBeyond = (float64(chaos.Total(pipe.cmdstats)) - float64(chaos.Total(noop.cmdstats))) / acct

	// Memory per ledger record (left by the last pipeline run) and per lock.
	if err := e.memory(ctx, r); err != nil {
		return err
	}
	// Latency from publication to placed bid.
	if err := e.latency(ctx, r); err != nil {
		return err
	}

	r.Targets = []string{
		verdict(r.NaiveX[4] >= 0.85, "full pipeline >= 0.85x the naive handler (4 processes): %.2fx", r.NaiveX[4]),
		verdict(r.Ratio[4] >= 0.75, "full pipeline >= 0.75x no-op asynq (4 processes): %.2fx", r.Ratio[4]),
		verdict(r.Beyond <= 8, "<= 8 Redis commands per placed bid beyond asynq's own (top-level): %.2f (%.2f counting commands inside Lua)", r.Beyond, r.AllBeyond),
		verdict(r.LockBytes <= 120, "<= 120 bytes per held lock: %.0f (fence counter +%.0f)", r.LockBytes, r.FenceB),
		verdict(r.LedgerB <= 300, "<= 300 bytes per ledger record: %.0f", r.LedgerB),
	}
	print(r)
	if err := charts(r, *outDir); err != nil {
		return err
	}
	if *jsonP != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(*jsonP, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *logDir == "" {
		_ = os.RemoveAll(e.logs)
	}
	return nil
}

func verdict(ok bool, f string, a ...any) string {
	s := "MET     "
	if !ok {
		s = "NOT MET "
	}
	return s + fmt.Sprintf(f, a...)
}

type accounting struct {
	cmdstats, top, lua map[string]int
}

func perTask(m map[string]int, n int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = float64(v) / float64(n)
	}
	return out
}

func commandstats(ctx context.Context, rdb *redis.Client) map[string]int {
	s, _ := rdb.Info(ctx, "commandstats").Result()
	out := map[string]int{}
	for _, l := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.Atoi(v)
			}
		}
	}
	return out
}

func diff(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// throughput enqueues n bid tasks for n postings of a fresh sandbox and
// times until the bids queue is empty, with `procs` bidder workers
// (pipeline) or no-op asynq servers. With acct set, it counts commands
// instead of only timing.
// The handlers a throughput run measures.
const (
	modePipeline = "pipeline" // bidder worker
	modeNaive    = "naive"    // decode and POST: no lock, no ledger
	modeNoop     = "noop"     // does nothing: asynq's own ceiling
)

func (e *env) throughput(ctx context.Context, procs, n int, mode string, acct *accounting, r *result) (float64, time.Duration, error) {
	pipeline := mode == modePipeline
	defer e.stopAll()
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		return 0, 0, err
	}
	e.rdb.ConfigResetStat(ctx)
	sport, _ := chaos.FreePort()
	saddr := fmt.Sprintf("127.0.0.1:%d", sport)
	sb := chaos.NewSandboxProc(e.self, e.logs, "sandbox", "--listen", saddr, "--postings", strconv.Itoa(n), "--latency", "0")
	if err := e.start(sb); err != nil {
		return 0, 0, err
	}
	if err := chaos.WaitTCP(sb, saddr, 10*time.Second); err != nil {
		return 0, 0, err
	}
	posts, err := fetch(ctx, "http://"+saddr, n)
	if err != nil {
		return 0, 0, err
	}
	var workers []*chaos.Proc
	for i := 0; i < procs; i++ {
		var p *chaos.Proc
		if pipeline {
			cfg := chaos.StandardConfig()
			cfg.Concurrency = *conc
			cfg.BidAll = true
			cfg.LockTTL = 30 * time.Second
			cfg.SettleDelay = 15 * time.Second
			cfg.RequestTimeout = 10 * time.Second
			path, err := chaos.BidderYAML(cfg, e.logs, "http://"+saddr)
			if err != nil {
				return 0, 0, err
			}
			hport, _ := chaos.FreePort()
			p = &chaos.Proc{Name: fmt.Sprintf("worker-%d", i+1), Bin: e.bidder, Dir: e.logs,
				Args: []string{"worker", "--config", path, "--http-addr", fmt.Sprintf("127.0.0.1:%d", hport), "--log-level", "warn"},
				Env:  chaos.BidderEnv(e.redisAddr)}
		} else if mode == modeNaive {
			p = chaos.NewNaiveWorkerProc(e.self, e.logs, fmt.Sprintf("naive-%d", i+1), e.redisAddr, "http://"+saddr, *conc)
		} else {
			p = chaos.NewNoopWorkerProc(e.self, e.logs, fmt.Sprintf("noop-%d", i+1), e.redisAddr, *conc)
		}
		if err := e.start(p); err != nil {
			return 0, 0, err
		}
		workers = append(workers, p)
	}
	time.Sleep(1500 * time.Millisecond) // servers up and polling

	// Two dedicated connections: enqueue (counted: asynq's own cost, the
	// same in both runs) and poll (not counted).
	enq := redis.NewClient(&redis.Options{Addr: e.redisAddr, PoolSize: 8})
	defer enq.Close()
	poll := redis.NewClient(&redis.Options{Addr: e.redisAddr, PoolSize: 1, MaxIdleConns: 1})
	defer poll.Close()
	info, err := poll.ClientInfo(ctx).Result()
	if err != nil {
		return 0, 0, err
	}
	var mon *chaos.Monitor
	var before map[string]int
	if acct != nil {
		if mon, err = chaos.StartMonitor(e.redisAddr, info.Addr); err != nil {
			return 0, 0, err
		}
		before = commandstats(ctx, poll)
	}
	cl := asynq.NewClientFromRedisClient(enq)
	insp := asynq.NewInspectorFromRedisClient(poll)
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(posts); i += 8 {
				t, err := worker.NewBidTask(posts[i])
				if err == nil {
					_, err = cl.Enqueue(t)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	select {
	case err := <-errc:
		return 0, 0, fmt.Errorf("enqueue: %w", err)
	default:
	}
	maxRSS := 0
	deadline := time.Now().Add(5 * time.Minute)
	for {
		qi, err := insp.GetQueueInfo("bids")
		if err == nil && qi.Pending+qi.Active+qi.Scheduled+qi.Retry == 0 && qi.Completed+qi.Archived+int(qi.Processed) > 0 {
			break
		}
		for _, w := range workers {
			maxRSS = max(maxRSS, chaos.VmRSS(w.Pid()))
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("run did not finish in 5 minutes (logs %s)", e.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	if acct != nil {
		acct.cmdstats = diff(commandstats(ctx, poll), before)
		mon.Stop()
		acct.top, acct.lua = mon.TopLevel, mon.FromLua
		// INFO and CLIENT calls of the poll connection are not the pipeline's.
		delete(acct.cmdstats, "info")
	}
	if mode != modeNoop {
		var st chaos.SandboxStats
		if err := getJSON(ctx, "http://"+saddr+"/v1/stats", &st); err != nil {
			return 0, 0, err
		}
		if st.Bids != int64(n) || st.DuplicateBids != 0 {
			return 0, 0, fmt.Errorf("%s run: %d tasks gave %d bids, %d duplicates (logs %s)", mode, n, st.Bids, st.DuplicateBids, e.logs)
		}
		if acct == nil && pipeline {
			r.RSSKiB[procs] = maxRSS
		}
	}
	return float64(n) / took.Seconds(), took, nil
}

func fetch(ctx context.Context, base string, n int) ([]marketplace.Posting, error) {
	ad, err := sandbox.NewAdapter(marketplace.Config{ID: "sandbox", BaseURL: base, Token: chaos.SandboxToken})
	if err != nil {
		return nil, err
	}
	var out []marketplace.Posting
	cursor := ""
	for len(out) < n {
		pg, err := ad.Scan(ctx, cursor, 500)
		if err != nil {
			return nil, err
		}
		if len(pg.Postings) == 0 {
			break
		}
		out = append(out, pg.Postings...)
		cursor = pg.NextCursor
	}
	return out, nil
}

func getJSON(ctx context.Context, url string, out any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+chaos.SandboxToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

func (e *env) memory(ctx context.Context, r *result) error {
	var keys []string
	iter := e.rdb.Scan(ctx, 0, "bid_ledger:*", 1000).Iterator()
	for iter.Next(ctx) && len(keys) < 200 {
		keys = append(keys, iter.Val())
	}
	if len(keys) == 0 {
		return fmt.Errorf("no ledger records to measure: %v", iter.Err())
	}
	r.LedgerB = memUsage(ctx, e.rdb, keys)
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	m := lock.NewManager(e.rdb, lock.WithTTL(time.Minute))
	var lk, fk []string
	var held []*lock.Lock
	for i := 0; i < 100; i++ {
		l, err := m.Acquire(ctx, "sandbox", fmt.Sprintf("p-%06d", i+1), 0)
		if err != nil {
			return err
		}
		held = append(held, l)
		lk = append(lk, fmt.Sprintf("bid_lock:sandbox:p-%06d", i+1))
		fk = append(fk, l.FenceKey())
	}
	r.LockBytes, r.FenceB = memUsage(ctx, e.rdb, lk), memUsage(ctx, e.rdb, fk)
	for _, l := range held {
		_ = l.Release(ctx)
	}
	return nil
}

func memUsage(ctx context.Context, rdb *redis.Client, keys []string) float64 {
	sum, n := 0, 0
	for _, k := range keys {
		v, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err == nil {
			sum += int(v)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(sum) / float64(n)
}

// latency runs 4 workers and 2 scanners against a publishing sandbox with
// latency on, then measures publication -> ledger "placed" per posting.
func (e *env) latency(ctx context.Context, r *result) error {
	defer e.stopAll()
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	sport, _ := chaos.FreePort()
	saddr := fmt.Sprintf("127.0.0.1:%d", sport)
	sb := chaos.NewSandboxProc(e.self, e.logs, "sandbox-latency", "--listen", saddr, "--latency", "1ms..50ms",
		"--rate", fmt.Sprint(*latRate))
	if err := e.start(sb); err != nil {
		return err
	}
	if err := chaos.WaitTCP(sb, saddr, 10*time.Second); err != nil {
		return err
	}
	cfg := chaos.StandardConfig()
	cfg.Concurrency = *conc
	cfg.BidAll = true
	cfg.LockTTL, cfg.SettleDelay, cfg.RequestTimeout = 30*time.Second, 15*time.Second, 10*time.Second
	path, err := chaos.BidderYAML(cfg, e.logs, "http://"+saddr)
	if err != nil {
		return err
	}
	for i := 0; i < 6; i++ {
		role, name := "worker", fmt.Sprintf("lat-worker-%d", i+1)
		if i >= 4 {
			role, name = "scanner", fmt.Sprintf("lat-scanner-%d", i-3)
		}
		hport, _ := chaos.FreePort()
		p := &chaos.Proc{Name: name, Bin: e.bidder, Dir: e.logs,
			Args: []string{role, "--config", path, "--http-addr", fmt.Sprintf("127.0.0.1:%d", hport), "--log-level", "warn"},
			Env:  chaos.BidderEnv(e.redisAddr)}
		if err := e.start(p); err != nil {
			return err
		}
	}
	time.Sleep(*latSec)
	_ = sb.Signal(syscall.SIGUSR1)
	time.Sleep(5 * time.Second) // last scan + bids
	hc := &http.Client{Timeout: 5 * time.Second}
	posts, err := chaos.SandboxPostings(ctx, hc, "http://"+saddr)
	if err != nil {
		return err
	}
	for _, p := range posts {
		m, err := e.rdb.HMGet(ctx, "bid_ledger:sandbox:"+p.ID, "s", "at").Result()
		if err != nil || m[0] != "placed" {
			continue
		}
		ms, _ := strconv.ParseInt(fmt.Sprint(m[1]), 10, 64)
		r.Latencies = append(r.Latencies, float64(time.UnixMilli(ms).Sub(p.PostedAt).Microseconds())/1000)
	}
	sort.Float64s(r.Latencies)
	r.LatN = len(r.Latencies)
	if r.LatN == 0 {
		return fmt.Errorf("latency run placed no bids (logs %s)", e.logs)
	}
	r.P50 = r.Latencies[r.LatN/2]
	r.P99 = r.Latencies[min(r.LatN-1, r.LatN*99/100)]
	logf("latency: %d placed bids, publication -> placed p50 %.0f ms p99 %.0f ms", r.LatN, r.P50, r.P99)
	return nil
}

func machine() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	model := ""
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			break
		}
	}
	la, _ := os.ReadFile("/proc/loadavg")
	out, _ := exec.Command("redis-server", "--version").Output()
	return fmt.Sprintf("%d CPUs (%s), load average at start %s, %s", numCPU(), model,
		strings.Join(strings.Fields(string(la))[:3], " "), strings.TrimSpace(string(out)))
}

func print(r *result) {
	fmt.Printf("machine: %s\n", r.Machine)
	fmt.Printf("throughput, %d bid tasks per run, concurrency %d per process (sandbox latency 0, no faults):\n", r.Tasks, r.Conc)
	fmt.Printf("  %-10s %12s %10s %8s %14s %7s %12s\n", "processes", "pipeline/s", "naive/s", "x_naive", "no-op asynq/s", "ratio", "max RSS MiB")
	for _, n := range []int{1, 2, 4} {
		fmt.Printf("  %-10d %12.0f %10.0f %8.2f %14.0f %7.2f %12.1f\n", n, r.Pipeline[n], r.Naive[n], r.NaiveX[n], r.Noop[n], r.Ratio[n], float64(r.RSSKiB[n])/1024)
	}
	fmt.Printf("redis commands per placed bid (1 worker, 2000 bids):\n")
	fmt.Printf("  top-level (MONITOR):      pipeline %.2f, no-op %.2f -> beyond asynq %.2f\n", float64(sumF(r.TopLevel)), float64(sumF(r.NoopTop)), r.Beyond)
	fmt.Printf("    pipeline: %s\n", fmtMap(r.TopLevel))
	fmt.Printf("    no-op:    %s\n", fmtMap(r.NoopTop))
	fmt.Printf("  inside Lua (MONITOR):     %s\n", fmtMap(r.FromLua))
	fmt.Printf("  INFO commandstats (all):  pipeline %.2f, no-op %.2f -> beyond asynq %.2f\n", sumF(r.CmdStats), sumF(r.NoopStats), r.AllBeyond)
	fmt.Printf("memory: %.0f B per ledger record, %.0f B per held lock, %.0f B per fence counter\n", r.LedgerB, r.LockBytes, r.FenceB)
	fmt.Printf("publication -> placed bid (4 workers, 2 scanners @every 1s, sandbox latency 1-50ms, %g postings/s): p50 %.0f ms, p99 %.0f ms over %d bids\n",
		*latRate, r.P50, r.P99, r.LatN)
	for _, t := range r.Targets {
		fmt.Println("target: " + t)
	}
}

func sumF(m map[string]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

func fmtMap(m map[string]float64) string {
	type kv struct {
		k string
		v float64
	}
	var l []kv
	for k, v := range m {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v })
	var parts []string
	for _, x := range l {
		if x.v >= 0.01 {
			parts = append(parts, fmt.Sprintf("%s=%.2f", x.k, x.v))
		}
	}
	return strings.Join(parts, " ")
}
