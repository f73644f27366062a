package worker_test

import (
	"context"
	"os"
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
)

// BenchmarkPipeline: postings/s through the full bid handler (lock, ledger,
// rules, an in-process sandbox over loopback HTTP) next to a no-op handler
// on the same asynq server setup, in one run. The ratio is reported as
// x_noop on the full case.
//
//	go test -run '^$' -bench Pipeline -benchtime 2000x ./worker
func BenchmarkPipeline(b *testing.B) {
	t := &testing.T{}
	var noopRate float64
	for _, name := range []string{"noop", "full", "full_memory_marketplace"} {
		b.Run(name, func(b *testing.B) {
			e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = b.N; c.Idempotency = sandbox.IdempotencyOn })
			ps := e.postings(t)
			if len(ps) != b.N {
				b.Fatalf("sandbox published %d postings, want %d", len(ps), b.N)
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
				if err == nil && done.Add(1) == int64(b.N) {
					close(all)
				}
			}
			var handler asynq.Handler
			locks := lock.NewManager(e.rdb)
			if name == "noop" {
				handler = asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error { count(nil); return nil })
			} else {
				// bidder's own Redis traffic goes through a second client
				// that counts it: round trips per posting beyond asynq's.
				own := redis.NewClient(&redis.Options{Addr: e.redis.Addr(), PoolSize: 40})
				defer own.Close()
				own.AddHook(counter{&sent})
				var market marketplace.Adapter = e.adapter
				if name == "full_memory_marketplace" {
					// The marketplace answered in memory: what bidder itself
					// costs, without HTTP and the sandbox server.
					market = &memMarket{}
				}
				h, err := worker.NewBidHandler(lock.NewManager(own), ledger.New(own), map[string]worker.Marketplace{
					mpID: {Adapter: market, Rules: bidAll(t)},
				})
				if err != nil {
					b.Fatal(err)
				}
				handler = asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
					err := h.ProcessTask(ctx, task)
					count(err)
					return err
				})
			}
			srv := worker.NewServer(e.rdb, worker.ServerConfig{Concurrency: 20, PollInterval: 10 * time.Millisecond}, locks)
			calls0 := redisCalls(e)
			cpu0 := procCPU(e.redis.Pid())
			self0 := procCPU(os.Getpid())
			b.ResetTimer()
			start := time.Now()
			if err := srv.Start(handler); err != nil {
				b.Fatal(err)
			}
			select {
			case <-all:
			case <-time.After(5 * time.Minute):
				b.Fatalf("only %d of %d processed", done.Load(), b.N)
			}
			rate := float64(b.N) / time.Since(start).Seconds()
			b.StopTimer()
			srv.Shutdown(context.Background())
			b.ReportMetric(rate, "postings/s")
			// Where the time goes: Redis' CPU and this process' CPU (handler,
			// asynq, and the in-process sandbox) per posting.
			b.ReportMetric(float64(procCPU(e.redis.Pid())-cpu0)/float64(b.N)/1e3, "redis_cpu_us/posting")
			// Deterministic, unlike the CPU figures on a shared machine.
			b.ReportMetric(float64(redisCalls(e)-calls0)/float64(b.N), "redis_cmds/posting")
			if name != "noop" {
				b.ReportMetric(float64(sent.Load())/float64(b.N), "bidder_round_trips/posting")
			}
			b.ReportMetric(float64(procCPU(os.Getpid())-self0)/float64(b.N)/1e3, "proc_cpu_us/posting")
			if name == "noop" {
				noopRate = rate
			} else if noopRate > 0 {
				b.ReportMetric(rate/noopRate, "x_noop")
			}
			if st := e.market.Stats(); name == "full" && (st.DuplicateBids != 0 || st.Bids != int64(b.N)) {
				b.Fatalf("stats %+v", st)
			}
		})
	}
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
