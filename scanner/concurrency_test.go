package scanner

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
)

// killer cuts one instance off in the middle of a page: once a page of at
// least 20 postings is half enqueued (and an earlier page went through), it
// cancels the instance's ctx and fails the enqueue, as a SIGKILL would.
type killer struct {
	marketplace.Adapter
	enq    enqueuer
	cancel context.CancelFunc

	mu       sync.Mutex
	pageLen  int // postings on the page being enqueued
	onPage   int // enqueues of that page so far
	total    int
	killedAt int // enqueues done on the page when killed; 0 = alive
	pageSize int
}

func (k *killer) Scan(ctx context.Context, cursor string, limit int) (marketplace.Page, error) {
	p, err := k.Adapter.Scan(ctx, cursor, limit)
	k.mu.Lock()
	k.pageLen, k.onPage = len(p.Postings), 0
	k.mu.Unlock()
	return p, err
}

func (k *killer) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	k.mu.Lock()
	if k.killedAt == 0 && k.total >= 100 && k.pageLen >= 20 && k.onPage == k.pageLen/2 {
		k.killedAt = k.onPage
		k.pageSize = k.pageLen
		k.mu.Unlock()
		k.cancel()
		return nil, context.Canceled
	}
	k.onPage++
	k.total++
	k.mu.Unlock()
	return k.enq.EnqueueContext(ctx, t, opts...)
}

func TestTwoInstancesOneKilledMidPageEnqueueEveryPosting(t *testing.T) {
	const n = 5000
	e := newEnv(t)
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Instance A: its own client and handler, and a ctx the killer cancels.
	actx, akill := context.WithCancel(ctx)
	defer akill()
	clientA := asynq.NewClientFromRedisClient(e.rdb)
	defer clientA.Close()
	k := &killer{Adapter: ad, enq: clientA, cancel: akill}
	a := NewScanHandler(e.rdb, clientA, e.ledger, map[string]marketplace.Adapter{testMP: k}, e.wm,
		WithMetrics(e.metrics), WithPageSize(100), WithMaxPages(5))
	a.client = k
	// Instance B: a separate process as far as Redis can tell.
	clientB := asynq.NewClientFromRedisClient(e.rdb)
	defer clientB.Close()
	b := NewScanHandler(e.rdb, clientB, e.ledger, map[string]marketplace.Adapter{testMP: ad}, e.wm,
		WithMetrics(e.metrics), WithPageSize(100), WithMaxPages(5))

	var published []string
	var publishing atomic.Bool
	publishing.Store(true)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		defer publishing.Store(false)
		for len(published) < n {
			published = append(published, srv.Publish(125)...)
			// Pacing, not synchronisation: spread publishing over the scans.
			time.Sleep(20 * time.Millisecond)
		}
	}()

	var aErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // A scans until it is killed
		defer wg.Done()
		for actx.Err() == nil {
			if _, err := a.Scan(actx, testMP); err != nil && !errors.Is(err, ErrBusy) {
				aErr = err
				return
			}
		}
	}()
	var bScans int
	go func() { // B scans until, after publishing ended, a scan catches up
		defer wg.Done()
		for ctx.Err() == nil {
			done := !publishing.Load()
			sum, err := b.Scan(ctx, testMP)
			if errors.Is(err, ErrBusy) {
				continue
			}
			if err != nil {
				t.Errorf("instance B: %v", err)
				return
			}
			bScans++
			if done && sum.Result == ResultCaughtUp {
				return
			}
		}
	}()
	wg.Wait()
	<-pubDone
	if ctx.Err() != nil {
		t.Fatal("instances did not finish in 30s")
	}

	if k.killedAt == 0 {
		t.Fatal("instance A was never killed: the test did not test a crash")
	}
	if !errors.Is(aErr, context.Canceled) {
		t.Fatalf("A ended with %v, want context.Canceled", aErr)
	}
	t.Logf("A killed after %d of %d enqueues of a page (%d in all); B ran %d scans", k.killedAt, k.pageSize, k.total, bScans)

	have := e.taskIDs(t, worker.QueueBids)
	if len(published) != n || len(have) != n {
		t.Fatalf("%d published, %d bid tasks, want %d", len(published), len(have), n)
	}
	e.requireAllBidTasks(t, published)
	// Each posting was enqueued exactly once; B met A's half page again.
	if v := testutil.ToFloat64(e.metrics.enqueued.WithLabelValues(testMP)); v != n {
		t.Errorf("enqueued %v, want %d", v, n)
	}
	if v := testutil.ToFloat64(e.metrics.duplicates.WithLabelValues(testMP)); v < float64(k.killedAt) {
		t.Errorf("duplicates %v: the killed page's %d tasks were not met again", v, k.killedAt)
	}
}
