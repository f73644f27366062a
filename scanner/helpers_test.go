package scanner

import (
	"context"
	"errors"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
)

const (
	testMP    = "sbx"
	testToken = "scanner-test-token"
)

// env is one test's Redis, asynq client and ledger.
type env struct {
	redis   *redistest.Server
	rdb     *redis.Client
	client  *asynq.Client
	insp    *asynq.Inspector
	ledger  *ledger.Ledger
	reg     *prometheus.Registry
	metrics *Metrics
	wm      *worker.Metrics
	logs    *observer.ObservedLogs
	log     *zap.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := redistest.Start(t)
	rdb := s.Client(t)
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zapcore.DebugLevel)
	e := &env{
		redis:   s,
		rdb:     rdb,
		client:  asynq.NewClientFromRedisClient(rdb),
		insp:    asynq.NewInspectorFromRedisClient(rdb),
		ledger:  ledger.New(rdb),
		reg:     reg,
		metrics: NewMetrics(reg),
		wm:      worker.NewMetrics(reg),
		logs:    logs,
		log:     zap.New(core),
	}
	t.Cleanup(func() { _ = e.client.Close() })
	return e
}

// startSandbox runs a sandbox marketplace over real HTTP and returns it with
// an adapter for it.
func startSandbox(t *testing.T, cfg sandbox.ServerConfig) (*sandbox.Server, marketplace.Adapter, string) {
	t.Helper()
	cfg.Tokens = []string{testToken}
	srv, err := sandbox.NewServer(cfg)
	if err != nil {
		t.Fatalf("sandbox.NewServer: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
	})
	ad, err := sandbox.New(marketplace.Config{ID: testMP, BaseURL: hs.URL, Token: testToken})
	if err != nil {
		t.Fatalf("sandbox.New: %v", err)
	}
	return srv, ad, hs.URL
}

func (e *env) handler(ad marketplace.Adapter, opts ...HandlerOption) *ScanHandler {
	base := []HandlerOption{WithLogger(e.log), WithMetrics(e.metrics)}
	return NewScanHandler(e.rdb, e.client, e.ledger, map[string]marketplace.Adapter{ad.ID(): ad}, e.wm, append(base, opts...)...)
}

func scanTask(t *testing.T, mp string) *asynq.Task {
	t.Helper()
	task, err := NewScanTask(mp, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(task.Type(), task.Payload())
}

// taskIDs lists the IDs of every task in queue, whatever its state.
func (e *env) taskIDs(t *testing.T, queue string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	lists := []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		e.insp.ListPendingTasks, e.insp.ListActiveTasks, e.insp.ListScheduledTasks,
		e.insp.ListRetryTasks, e.insp.ListArchivedTasks, e.insp.ListCompletedTasks,
	}
	for _, list := range lists {
		for page := 1; ; page++ {
			infos, err := list(queue, asynq.PageSize(1000), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break
			}
			if err != nil {
				t.Fatalf("list %s tasks: %v", queue, err)
			}
			for _, in := range infos {
				out[in.ID] = true
			}
			if len(infos) < 1000 {
				break
			}
		}
	}
	return out
}

// requireAllBidTasks fails unless every posting has its bid task.
func (e *env) requireAllBidTasks(t *testing.T, postingIDs []string) {
	t.Helper()
	have := e.taskIDs(t, worker.QueueBids)
	var missing []string
	for _, id := range postingIDs {
		if !have[worker.BidTaskID(testMP, id)] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("%d of %d postings have no bid task (first: %v)", len(missing), len(postingIDs), missing[:min(5, len(missing))])
	}
}

func (e *env) storedCursor(t *testing.T, h *ScanHandler) string {
	t.Helper()
	v, err := e.rdb.Get(context.Background(), h.CursorKey(testMP)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	return v
}

// decide writes a final ledger record for a posting, as a worker would.
func (e *env) decide(t *testing.T, postingID string) {
	t.Helper()
	a, err := lock.NewManager(e.rdb).Prepare(testMP, postingID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.ledger.Claim(context.Background(), a, testMP, postingID,
		ledger.Decision{State: ledger.StateSkipped, Rule: "test", Reason: "decided before the scan"})
	if err != nil || c.Outcome != ledger.Recorded {
		t.Fatalf("decide %s: %+v, %v", postingID, c, err)
	}
}

// manualClock is a Clock that moves only when the test advances it, so
// scheduler tests cover many slots without waiting for them.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []clockWaiter
	calls   atomic.Int64
}

type clockWaiter struct {
	at time.Time
	ch chan time.Time
}

func newManualClock(now time.Time) *manualClock { return &manualClock{now: now} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls.Add(1)
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, clockWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock and fires every timer now due.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// Waiting is how many timers are pending.
func (c *manualClock) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

func zapString(k, v string) zapcore.Field { return zap.String(k, v) }
