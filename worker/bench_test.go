package worker_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

var (
	pipelineRounds  = flag.Int("pipeline.rounds", 4, "BenchmarkPipeline: interleaved rounds of every case")
	pipelineLatency = flag.Duration("pipeline.latency", 0, "BenchmarkPipeline: the sandbox's answer latency, every case alike (0: the in-process sandbox answers at once)")
	pipelineCases   = flag.String("pipeline.cases", "naive,full,floor,full_budget,noop,full_memory_marketplace", "BenchmarkPipeline: the cases to run (naive always runs: it is the baseline)")
)

// BenchmarkPipeline: postings/s through bidder's bid handler (claim, send,
// settle against an in-process sandbox over loopback HTTP, strict mode)
// next to the naive handler a user would otherwise write (decode the task,
// POST the bid: no lock, no ledger), the floor of any claim-send-settle
// design (naive plus two trivial scripts) and a no-op handler, on the same
// asynq server settings. The cases run in interleaved rounds in one process, each
// round on a fresh Redis and sandbox with b.N postings, so the machine's
// load drifts across all of them alike; every round's ratio is logged and
// the medians reported (x_naive on the full and floor cases; full_x_floor,
// what bidder's scripts and handler cost beyond their two round trips).
//
//	go test -run '^$' -bench Pipeline -benchtime 3000x ./worker
func BenchmarkPipeline(b *testing.B) {
	cases := []string{"naive"}
	for _, c := range strings.Split(*pipelineCases, ",") {
		if c != "naive" && c != "" {
			cases = append(cases, c)
		}
	}
	rates := map[string][]float64{}
	metrics := map[string]map[string][]float64{}
	for round := 0; round < *pipelineRounds; round++ {
		for _, name := range cases {
			r, m := runPipeline(b, name, b.N)
			rates[name] = append(rates[name], r)
			if metrics[name] == nil {
				metrics[name] = map[string][]float64{}
			}
			for k, v := range m {
				metrics[name][k] = append(metrics[name][k], v)
			}
		}
		// CPU per posting (this process + Redis) predicts the ratio on a
		// CPU-bound machine and drifts far less with other load than rates.
		cpu := func(name string) float64 {
			m := metrics[name]
			return m["proc_cpu_us/posting"][round] + m["redis_cpu_us/posting"][round]
		}
		line := fmt.Sprintf("round %d: naive %.0f/s %.0fus", round+1, rates["naive"][round], cpu("naive"))
		for _, name := range cases[1:] {
			line += fmt.Sprintf(", %s %.0f/s %.0fus (x_naive %.2f, by cpu %.2f)", name, rates[name][round], cpu(name),
				rates[name][round]/rates["naive"][round], cpu("naive")/cpu(name))
		}
		b.Log(line)
	}
	// One benchmark, no sub-benchmarks (Go would run this function once with
	// b.N = 1 to find them): every figure is named after its case.
	for _, name := range cases {
		b.ReportMetric(median(rates[name]), name+"_postings/s")
		if !strings.HasPrefix(name, "full") && !strings.HasPrefix(name, "floor") {
			continue
		}
		ratios := perRound(rates[name], rates["naive"])
		b.ReportMetric(median(ratios), name+"_x_naive")
		b.ReportMetric(slices.Min(ratios), name+"_x_naive_min")
		for k, vs := range metrics[name] {
			if k == "bidder_round_trips/posting" {
				b.ReportMetric(median(vs), name+"_"+k)
			}
		}
	}
	if rates["full"] != nil && rates["floor"] != nil {
		b.ReportMetric(median(perRound(rates["full"], rates["floor"])), "full_x_floor")
	}
	for _, name := range []string{"naive", "full", "floor"} {
		if rates[name] == nil {
			continue
		}
		for k, vs := range metrics[name] {
			if k != "bidder_round_trips/posting" {
				b.ReportMetric(median(vs), name+"_"+k)
			}
		}
	}
}

// runPipeline processes n postings with one handler case and returns its
// rate and where the time went.
func runPipeline(b *testing.B, name string, n int) (float64, map[string]float64) {
	t := b
	e := newEnv(t, func(c *sandbox.ServerConfig) {
		c.Postings = n
		c.Latency = sandbox.Latency{Min: *pipelineLatency, Max: *pipelineLatency}
	})
	defer e.close()
	ps := e.postings(t)
	if len(ps) != n {
		b.Fatalf("sandbox published %d postings, want %d", len(ps), n)
	}
	client := asynq.NewClientFromRedisClient(e.rdb)
	defer client.Close()
	for _, p := range ps {
		if _, err := client.Enqueue(bidTask(t, p)); err != nil {
			b.Fatal(err)
		}
	}
	var done, sent atomic.Int64
	all := make(chan struct{})
	count := func(err error) {
		if err == nil && done.Add(1) == int64(n) {
			close(all)
		}
	}
	// bidder's own Redis traffic goes through a second client that counts
	// it: round trips per posting beyond asynq's.
	own := redis.NewClient(&redis.Options{Addr: e.redis.Addr(), PoolSize: 40})
	defer own.Close()
	own.AddHook(counter{&sent})
	var handler asynq.Handler
	switch name {
	case "noop":
		handler = asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error { count(nil); return nil })
	case "naive":
		handler = asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			err := naiveBid(ctx, e.adapter, task, nil)
			count(err)
			return err
		})
	case "floor":
		// The naive handler plus two trivial scripts on bidder's own
		// client, one before the POST and one after: what any design with
		// a claim and a settle costs before either does any work. full's
		// distance from naive splits into floor's (the round trips) and
		// full's from floor (what the scripts and the handler do).
		one := redis.NewScript("return 1")
		rt := func(ctx context.Context) error { return one.Run(ctx, own, []string{"k"}).Err() }
		handler = asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			err := naiveBid(ctx, e.adapter, task, rt)
			count(err)
			return err
		})
	default:
		var market marketplace.Adapter = e.adapter
		if name == "full_memory_marketplace" {
			// The marketplace answered in memory: what bidder itself
			// costs, without HTTP and the sandbox server.
			market = &memMarket{}
		}
		mk := worker.Marketplace{Adapter: market, Rules: bidAll(t)}
		if name == "full_budget" {
			mk.Budget = rules.NewBudget(own, "", 0, 1_000_000)
		}
		h, err := worker.NewBidHandler(lock.NewManager(own), ledger.New(own), map[string]worker.Marketplace{mpID: mk})
		if err != nil {
			b.Fatal(err)
		}
		handler = asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			err := h.ProcessTask(ctx, task)
			count(err)
			return err
		})
	}
	srv := worker.NewServer(e.rdb, worker.ServerConfig{Concurrency: 20, PollInterval: 10 * time.Millisecond}, nil)
	calls0 := redisCalls(e)
	cpu0 := procCPU(e.redis.Pid())
	self0 := procCPU(os.Getpid())
	start := time.Now()
	if err := srv.Start(handler); err != nil {
		b.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%s: only %d of %d processed", name, done.Load(), n)
	}
	rate := float64(n) / time.Since(start).Seconds()
	srv.Shutdown(context.Background())
	m := map[string]float64{
		// Where the time goes: Redis' CPU and this process' CPU (handler,
		// asynq, and the in-process sandbox) per posting.
		"redis_cpu_us/posting": float64(procCPU(e.redis.Pid())-cpu0) / float64(n) / 1e3,
		"proc_cpu_us/posting":  float64(procCPU(os.Getpid())-self0) / float64(n) / 1e3,
		// Deterministic, unlike the CPU figures on a shared machine.
		"redis_cmds/posting": float64(redisCalls(e)-calls0) / float64(n),
	}
	if name != "noop" && name != "naive" {
		m["bidder_round_trips/posting"] = float64(sent.Load()) / float64(n)
	}
	if st := e.market.Stats(); name != "noop" && name != "full_memory_marketplace" && (st.DuplicateBids != 0 || st.Bids != int64(n)) {
		b.Fatalf("%s: stats %+v", name, st)
	}
	return rate, m
}

// naiveBid is what a user would write without bidder: decode the task,
// POST the bid. around, when set, runs before the POST and after it (the
// floor case's two round trips).
func naiveBid(ctx context.Context, m marketplace.Adapter, task *asynq.Task, around func(context.Context) error) error {
	p, err := worker.DecodeBidPayload(task.Payload())
	if err == nil && around != nil {
		err = around(ctx)
	}
	if err == nil {
		_, err = m.PlaceBid(ctx, p.ID, marketplace.Bid{Amount: 100, Currency: p.Budget.Currency, Proposal: "I can do " + p.Title + "."})
	}
	if err == nil && around != nil {
		err = around(ctx)
	}
	return err
}

// perRound is each round's ratio of a's rate to b's.
func perRound(a, b []float64) []float64 {
	r := make([]float64, len(a))
	for i := range r {
		r[i] = a[i] / b[i]
	}
	return r
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// procCPU is a process' user+system CPU time in nanoseconds, from /proc.
func procCPU(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return (u + sy) * 1e7 // clock ticks are 10ms
}

// memMarket places every bid at once, in memory.
type memMarket struct{ n atomic.Int64 }

func (m *memMarket) ID() string      { return mpID }
func (m *memMarket) Account() string { return "mem" }
func (m *memMarket) Scan(context.Context, string, int) (marketplace.Page, error) {
	return marketplace.Page{}, nil
}
func (m *memMarket) PlaceBid(_ context.Context, id string, bid marketplace.Bid) (marketplace.PlacedBid, error) {
	return marketplace.PlacedBid{ID: "b-" + strconv.FormatInt(m.n.Add(1), 10), PostingID: id, Amount: bid.Amount, Currency: bid.Currency}, nil
}
func (m *memMarket) FindBid(context.Context, string) (marketplace.PlacedBid, bool, error) {
	return marketplace.PlacedBid{}, false, nil
}

// counter is a go-redis hook counting commands sent (a pipeline counts as
// one round trip).
type counter struct{ n *atomic.Int64 }

func (c counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// redisCalls is the number of commands the server has executed (scripts
// count once, the commands they run inside are not added).
func redisCalls(e *env) int64 {
	info, err := e.rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return 0
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		_, rest, _ := strings.Cut(line, "calls=")
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		total += n
	}
	return total
}
