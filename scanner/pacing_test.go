package scanner

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
)

func TestLimiterPacesAndReserves(t *testing.T) {
	e := newEnv(t)
	l := newLimiter(e.rdb, DefaultRateKeyPrefix)
	ctx := context.Background()
	r := Rate{PerSecond: 50} // one request per 20ms
	for i := 0; i < 10; i++ {
		w, ok, err := l.reserve(ctx, "a", r, time.Second)
		if err != nil || !ok {
			t.Fatalf("reserve %d: %v, %v", i, ok, err)
		}
		want := time.Duration(i) * 20 * time.Millisecond
		// The calls themselves take time, which comes off the wait.
		if w > want || w < want-50*time.Millisecond {
			t.Errorf("reserve %d: wait %s, want about %s", i, w, want)
		}
	}
	// Asking with too small a budget reserves nothing.
	w1, ok, err := l.reserve(ctx, "a", r, time.Millisecond)
	if err != nil || ok || w1 < 150*time.Millisecond {
		t.Fatalf("over-budget reserve: wait %s ok %v err %v", w1, ok, err)
	}
	w2, ok, _ := l.reserve(ctx, "a", r, time.Second)
	if !ok || w2 > w1 {
		t.Fatalf("refused reserve still took a slot: %s then %s", w1, w2)
	}

	// Burst: five back to back, the sixth waits.
	b := Rate{PerSecond: 10, Burst: 5}
	for i := 0; i < 5; i++ {
		if w, ok, _ := l.reserve(ctx, "b", b, 0); !ok || w != 0 {
			t.Fatalf("burst reserve %d: wait %s ok %v", i, w, ok)
		}
	}
	if _, ok, _ := l.reserve(ctx, "b", b, 0); ok {
		t.Fatal("sixth request of a burst of 5 went through without waiting")
	}

	// A pause (429) holds every caller, also unpaced ones.
	if err := l.pause(ctx, "c", Rate{}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	w, ok, _ := l.reserve(ctx, "c", Rate{}, time.Second)
	if ok || w < 1900*time.Millisecond || w > 2*time.Second {
		t.Fatalf("reserve during a 2s pause: wait %s ok %v", w, ok)
	}
	// Separate marketplaces do not share a pace.
	if w, ok, _ := l.reserve(ctx, "d", r, 0); !ok || w != 0 {
		t.Fatalf("fresh marketplace had to wait %s", w)
	}
}

func TestRateBudgetEndsScanAndNextSlotContinues(t *testing.T) {
	e := newEnv(t)
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{})
	ids := srv.Publish(300)
	opts := []HandlerOption{WithPageSize(50), WithRate(testMP, Rate{PerSecond: 4}), WithWaitBudget(600 * time.Millisecond)}
	h := e.handler(ad, opts...)
	ctx := context.Background()

	start := time.Now()
	sum, err := ScanOnce(ctx, h, testMP)
	elapsed := time.Since(start)
	// Requests at 0, 250ms and 500ms fit the 600ms wait budget; on a quiet
	// machine the 4th does not. Page processing time does not count as
	// waiting, so on a loaded machine one more may fit; the scan must still
	// end on its budget well before catching up (6 pages).
	if err != nil || sum.Result != ResultRateBudget || sum.Pages < 3 || sum.Pages > 4 || sum.Seen != sum.Pages*50 {
		t.Fatalf("paced scan: %s, %v; want 3 (or, under load, 4) pages then rate_budget", sum, err)
	}
	if min := time.Duration(sum.Pages-1)*250*time.Millisecond - 50*time.Millisecond; elapsed < min {
		t.Fatalf("%d requests at 4/s took %s: not paced", sum.Pages, elapsed)
	}
	if e.storedCursor(t, h) != sum.CursorAfter || sum.CursorAfter == "" {
		t.Fatal("cursor not stored at the end of a budget-limited scan")
	}
	// Following slots continue from the cursor until caught up.
	deadline := time.Now().Add(20 * time.Second)
	for sum.Result != ResultCaughtUp {
		if time.Now().After(deadline) {
			t.Fatalf("not caught up: %s", sum)
		}
		if sum, err = ScanOnce(ctx, h, testMP); err != nil {
			t.Fatal(err)
		}
	}
	e.requireAllBidTasks(t, ids)
	if v := testutil.ToFloat64(e.metrics.enqueued.WithLabelValues(testMP)); v != 300 {
		t.Fatalf("enqueued %v, want exactly 300 (no page scanned twice)", v)
	}
}

// recordingAdapter logs the time and answer of every Scan call.
type recordingAdapter struct {
	marketplace.Adapter
	mu    sync.Mutex
	calls []scanCall
}

type scanCall struct {
	at  time.Time
	err error
}

func (a *recordingAdapter) Scan(ctx context.Context, cursor string, limit int) (marketplace.Page, error) {
	at := time.Now()
	p, err := a.Adapter.Scan(ctx, cursor, limit)
	a.mu.Lock()
	a.calls = append(a.calls, scanCall{at: at, err: err})
	a.mu.Unlock()
	return p, err
}

func TestRateLimitedAndFailingMarketplaceLosesNothing(t *testing.T) {
	e := newEnv(t)
	srv, inner, _ := startSandbox(t, sandbox.ServerConfig{RateLimitRate: 0.3, ErrorRate: 0.2, RetryAfter: time.Second, Seed: 7})
	ids := srv.Publish(600)
	ad := &recordingAdapter{Adapter: inner}
	h := e.handler(ad, WithPageSize(100), WithWaitBudget(5*time.Second))
	ctx := context.Background()

	var transient int
	deadline := time.Now().Add(25 * time.Second)
	for caughtUp := false; !caughtUp; {
		if time.Now().After(deadline) {
			t.Fatal("scans did not catch up")
		}
		// What asynq does: run the task, retry it on error.
		err := h.ProcessTask(ctx, scanTask(t, testMP))
		switch {
		case err == nil:
			caughtUp = testutil.ToFloat64(e.metrics.runs.WithLabelValues(testMP, ResultCaughtUp)) > 0
		case errors.Is(err, marketplace.ErrTransient) && !errors.Is(err, asynq.SkipRetry):
			transient++
		default:
			t.Fatalf("ProcessTask: %v", err)
		}
	}
	e.requireAllBidTasks(t, ids)
	if v := testutil.ToFloat64(e.metrics.enqueued.WithLabelValues(testMP)); v != 600 {
		t.Errorf("enqueued %v, want 600", v)
	}

	ad.mu.Lock()
	defer ad.mu.Unlock()
	var limited int
	for i, c := range ad.calls {
		if !errors.Is(c.err, marketplace.ErrRateLimited) {
			continue
		}
		limited++
		if i+1 < len(ad.calls) {
			if gap := ad.calls[i+1].at.Sub(c.at); gap < 950*time.Millisecond {
				t.Errorf("request %d came %s after a 429 with Retry-After 1s", i+1, gap)
			}
		}
	}
	if limited == 0 || transient == 0 {
		t.Fatalf("the run saw %d 429s and %d 5xx task failures in %d requests; the seed should give both", limited, transient, len(ad.calls))
	}
	t.Logf("%d requests, %d answered 429, %d scans failed on 5xx", len(ad.calls), limited, transient)
}

// limitedAdapter always answers 429 with a long Retry-After.
type limitedAdapter struct {
	marketplace.Adapter
	mu    sync.Mutex
	calls int
}

func (a *limitedAdapter) ID() string { return testMP }
func (a *limitedAdapter) Scan(context.Context, string, int) (marketplace.Page, error) {
	a.mu.Lock()
	a.calls++
	a.mu.Unlock()
	err := marketplace.NewError(marketplace.ErrRateLimited, "scan", "rate_limited", nil)
	err.RetryAfter = 30 * time.Second
	return marketplace.Page{}, err
}

func TestLongRetryAfterEndsScanAndPausesEveryInstance(t *testing.T) {
	e := newEnv(t)
	ad := &limitedAdapter{}
	ctx := context.Background()
	if err := e.rdb.Set(ctx, "bid_scan_cursor:"+testMP, "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	a := e.handler(ad, WithWaitBudget(time.Second))
	if err := a.ProcessTask(ctx, scanTask(t, testMP)); err != nil {
		t.Fatalf("a scan cut short by Retry-After returned %v, want nil (the next slot continues)", err)
	}
	if v := testutil.ToFloat64(e.metrics.runs.WithLabelValues(testMP, ResultRateLimited)); v != 1 {
		t.Fatalf("runs{rate_limited} = %v, want 1", v)
	}
	// Another instance, same account: it must not call the marketplace.
	b := e.handler(ad, WithWaitBudget(time.Second))
	sum, err := ScanOnce(ctx, b, testMP)
	if err != nil || sum.Pages != 0 {
		t.Fatalf("second instance: %s, %v", sum, err)
	}
	if ad.calls != 1 {
		t.Fatalf("marketplace called %d times during its 30s Retry-After, want 1", ad.calls)
	}
	if got := e.storedCursor(t, a); got != "kept" {
		t.Fatalf("cursor = %q after rate limiting, want it kept", got)
	}
}
