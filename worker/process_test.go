package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
)

// TestKilledBetweenIntentAndOutcome: a worker process is SIGKILLed after
// the marketplace stored its bid but before the ledger heard of it. The
// re-delivered task must find that bid, not place another.
func TestKilledBetweenIntentAndOutcome(t *testing.T) {
	if os.Getenv("BIDDER_WORKER_CHILD") == "1" {
		killedChild()
		return
	}
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 1 })
	p := e.postings(t)[0]
	pj, _ := json.Marshal(p)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledBetweenIntentAndOutcome$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BIDDER_WORKER_CHILD=1", "BIDDER_CHILD_REDIS="+e.redis.Addr(),
		"BIDDER_CHILD_SANDBOX="+e.url, "BIDDER_CHILD_POSTING="+string(pj))
	out, err := cmd.CombinedOutput()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed mid-bid: %v\n%s", err, out)
	}
	if st := e.market.Stats(); st.Bids != 1 {
		t.Fatalf("child should have placed its bid before dying; stats %+v", st)
	}
	rec, _ := e.ledger.Get(context.Background(), mpID, p.ID)
	if rec.State != ledger.StateIntent {
		t.Fatalf("after the kill the ledger holds %+v, want the intent", rec)
	}
	h, _ := e.handler(t, nil)
	if err := drive(t, h, bidTask(t, p)); err != nil {
		t.Fatal(err)
	}
	rec, _ = e.ledger.Get(context.Background(), mpID, p.ID)
	if rec.State != ledger.StatePlaced || rec.BidID == "" {
		t.Fatalf("re-delivery recorded %+v, want the child's bid as placed", rec)
	}
	e.assertNoDuplicates(t, 1)
}

func killedChild() {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("BIDDER_CHILD_REDIS")})
	a, err := sandbox.New(marketplace.Config{ID: mpID, BaseURL: os.Getenv("BIDDER_CHILD_SANDBOX"), Token: token})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	var p marketplace.Posting
	if err := json.Unmarshal([]byte(os.Getenv("BIDDER_CHILD_POSTING")), &p); err != nil {
		os.Exit(2)
	}
	t := &testing.T{}
	h, err := worker.NewBidHandler(lock.NewManager(rdb, lock.WithTTL(time.Second)), ledger.New(rdb),
		map[string]worker.Marketplace{mpID: {Adapter: a, Rules: bidAll(t)}},
		worker.WithHooks(worker.Hooks{AfterPlace: func(context.Context, *lock.Lock) {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}}))
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	task, _ := worker.NewBidTask(p)
	err = h.ProcessTask(context.Background(), task)
	fmt.Println("child survived:", err)
	os.Exit(3)
}

// TestRedisRestartFromAOFMidRun runs the pipeline on a real asynq server,
// kills Redis mid-run and restarts it from its append-only file.
func TestRedisRestartFromAOFMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq to recover tasks")
	}
	e := newEnv(t, func(c *sandbox.ServerConfig) {
		c.Postings = 200
		c.Latency = sandbox.Latency{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	}, redistest.WithAppendOnly("always"))
	h, locks := e.handler(t, []lock.Option{lock.WithTTL(2 * time.Second)})
	srv := worker.NewServer(e.rdb, worker.ServerConfig{Concurrency: 8, PollInterval: 50 * time.Millisecond, ShutdownTimeout: 5 * time.Second, Logger: zaptest.NewLogger(t).Named("srv")}, locks)
	if err := srv.Start(worker.NewMux(h, worker.NewMetrics(nil), zaptest.NewLogger(t))); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	client := asynq.NewClientFromRedisClient(e.rdb)
	ps := e.postings(t)
	for _, p := range ps {
		if _, err := client.Enqueue(bidTask(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 20*time.Second, "a third of the bids placed", func() bool { return e.market.Stats().Bids >= int64(len(ps)/3) })
	e.redis.Kill()
	if n := e.market.Stats().Bids; n >= int64(len(ps)) {
		t.Fatalf("all %d bids were placed before Redis was killed: the test proved nothing", n)
	}
	e.redis.Restart()
	// Tasks that were active when Redis died come back after asynq's lease
	// and recoverer intervals (up to ~2 minutes); the rest go on at once.
	wait.Until(t, 3*time.Minute, "every posting decided", func() bool {
		states, err := e.ledger.States(context.Background(), mpID, ids(ps))
		if err != nil {
			return false
		}
		for _, s := range states {
			if !s.Final() {
				return false
			}
		}
		return true
	})

	e.assertNoDuplicates(t, int64(len(ps)))
}

func ids(ps []marketplace.Posting) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// TestBadPayloadArchivedByAsynq: through a real server, the reason is
// visible where operators look (asynqmon / Inspector).
func TestBadPayloadArchivedByAsynq(t *testing.T) {
	e := newEnv(t, nil)
	h, locks := e.handler(t, nil)
	srv := worker.NewServer(e.rdb, worker.ServerConfig{Concurrency: 2, PollInterval: 50 * time.Millisecond}, locks)
	if err := srv.Start(worker.NewMux(h, worker.NewMetrics(nil), zaptest.NewLogger(t))); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	client := asynq.NewClientFromRedisClient(e.rdb)
	info, err := client.Enqueue(asynq.NewTask(worker.TypeBid, []byte(`{"v":1,`)), asynq.Queue(worker.QueueBids))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	wait.Until(t, 10*time.Second, "bad task archived", func() bool {
		ti, err := insp.GetTaskInfo(worker.QueueBids, info.ID)
		return err == nil && ti.State == asynq.TaskStateArchived
	})

	ti, _ := insp.GetTaskInfo(worker.QueueBids, info.ID)
	if ti.Retried != 0 || ti.LastErr == "" {
		t.Fatalf("archived after %d retries with reason %q; want at once, with a reason", ti.Retried, ti.LastErr)
	}
}
