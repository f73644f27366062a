package scanner

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zapcore"

	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
)

func TestScanEnqueuesEveryPostingOnceAndCatchesUp(t *testing.T) {
	e := newEnv(t)
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{})
	ids := srv.Publish(250)
	h := e.handler(ad, WithPageSize(100))
	ctx := context.Background()

	sum, err := ScanOnce(ctx, h, testMP)
	if err != nil {
		t.Fatalf("ScanOnce: %v (%s)", err, sum)
	}
	// 3 pages of postings plus the empty page that says "caught up".
	if sum.Result != ResultCaughtUp || sum.Pages != 4 || sum.Seen != 250 || sum.Enqueued != 250 || sum.Duplicates != 0 {
		t.Fatalf("first scan: %s", sum)
	}
	if sum.CursorBefore != "" || sum.CursorAfter == "" || e.storedCursor(t, h) != sum.CursorAfter {
		t.Fatalf("cursor not stored: %s, stored %q", sum, e.storedCursor(t, h))
	}
	e.requireAllBidTasks(t, ids)
	if got := e.taskIDs(t, worker.QueueBids); len(got) != 250 {
		t.Fatalf("%d bid tasks, want 250", len(got))
	}

	again, err := ScanOnce(ctx, h, testMP)
	if err != nil || again.Seen != 0 || again.Enqueued != 0 || again.Result != ResultCaughtUp || again.CursorBefore != sum.CursorAfter {
		t.Fatalf("second scan re-read postings or moved: %s, %v", again, err)
	}
	if v := testutil.ToFloat64(e.metrics.enqueued.WithLabelValues(testMP)); v != 250 {
		t.Errorf("bidder_postings_enqueued_total = %v, want 250", v)
	}
	if v := testutil.ToFloat64(e.metrics.runs.WithLabelValues(testMP, ResultCaughtUp)); v != 2 {
		t.Errorf("bidder_scan_runs_total{caught_up} = %v, want 2", v)
	}
	if lag := testutil.ToFloat64(e.metrics.lag.WithLabelValues(testMP)); lag < 0 || lag > 60 {
		t.Errorf("cursor lag = %v s, want a small non-negative value", lag)
	}
	if s := sum.String(); !strings.Contains(s, "enqueued=250") || !strings.Contains(s, "result=caught_up") {
		t.Errorf("Summary.String() = %q", s)
	}
}

func TestRescanCountsDuplicatesNotErrors(t *testing.T) {
	e := newEnv(t)
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{})
	srv.Publish(30)
	h := e.handler(ad)
	ctx := context.Background()
	if _, err := ScanOnce(ctx, h, testMP); err != nil {
		t.Fatal(err)
	}
	// Forget the cursor, as if a crash happened before it was stored.
	if err := e.rdb.Del(ctx, h.CursorKey(testMP)).Err(); err != nil {
		t.Fatal(err)
	}
	sum, err := ScanOnce(ctx, h, testMP)
	if err != nil || sum.Enqueued != 0 || sum.Duplicates != 30 {
		t.Fatalf("re-scan: %s, %v; want 30 duplicates", sum, err)
	}
	if v := testutil.ToFloat64(e.metrics.duplicates.WithLabelValues(testMP)); v != 30 {
		t.Errorf("bidder_enqueue_duplicates_total = %v, want 30", v)
	}
	want := `
# HELP bidder_duplicates_prevented_total Second attempts on a posting stopped, by the layer that stopped them (enqueue, lock, ledger, fence, marketplace).
# TYPE bidder_duplicates_prevented_total counter
bidder_duplicates_prevented_total{layer="enqueue"} 30
bidder_duplicates_prevented_total{layer="fence"} 0
bidder_duplicates_prevented_total{layer="ledger"} 0
bidder_duplicates_prevented_total{layer="lock"} 0
bidder_duplicates_prevented_total{layer="marketplace"} 0
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want), "bidder_duplicates_prevented_total"); err != nil {
		t.Error(err)
	}
}

func TestCursorSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{})
	ids := srv.Publish(300)
	ctx := context.Background()

	first := e.handler(ad, WithPageSize(50), WithMaxPages(2))
	if err := first.ProcessTask(ctx, scanTask(t, testMP)); err != nil {
		t.Fatal(err)
	}
	stored := e.storedCursor(t, first)
	if stored == "" {
		t.Fatal("no cursor stored after a page-limited scan")
	}
	if v := testutil.ToFloat64(e.metrics.runs.WithLabelValues(testMP, ResultPageLimit)); v != 1 {
		t.Fatalf("runs{page_limit} = %v, want 1", v)
	}

	// A new process: new client, new handler, same Redis.
	client2 := asynq.NewClientFromRedisClient(e.rdb)
	defer client2.Close()
	second := NewScanHandler(e.rdb, client2, e.ledger, map[string]marketplace.Adapter{testMP: ad}, e.wm,
		WithPageSize(50), WithMetrics(e.metrics))
	sum, err := ScanOnce(ctx, second, testMP)
	if err != nil {
		t.Fatal(err)
	}
	if sum.CursorBefore != stored || sum.Seen != 200 || sum.Enqueued != 200 || sum.Duplicates != 0 {
		t.Fatalf("restarted scan did not continue from the stored cursor: %s", sum)
	}
	e.requireAllBidTasks(t, ids)
}

func TestMalformedCursorIsResetWithWarning(t *testing.T) {
	for _, c := range []struct{ name, cursor string }{
		{"refused by marketplace", "not-a-cursor-this-server-issued"},
		{"binary junk", "\x00\xffjunk"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			srv, ad, _ := startSandbox(t, sandbox.ServerConfig{})
			ids := srv.Publish(40)
			h := e.handler(ad)
			ctx := context.Background()
			if err := e.rdb.Set(ctx, h.CursorKey(testMP), c.cursor, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if err := h.ProcessTask(ctx, scanTask(t, testMP)); err != nil {
				t.Fatalf("ProcessTask on a malformed cursor: %v", err)
			}
			e.requireAllBidTasks(t, ids)
			if got := e.storedCursor(t, h); got == c.cursor || got == "" {
				t.Fatalf("cursor not replaced: %q", got)
			}
			warned := e.logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("cursor").Len()
			if warned == 0 {
				t.Fatal("no warning logged about the cursor")
			}
		})
	}
}

func TestPermanentFailureFromStartKeepsCursor(t *testing.T) {
	e := newEnv(t)
	_, _, url := startSandbox(t, sandbox.ServerConfig{})
	// An adapter with a token the server does not know: 401 on every call.
	bad, err := sandbox.New(marketplace.Config{ID: testMP, BaseURL: url, Token: "wrong-token"})
	if err != nil {
		t.Fatal(err)
	}
	h := e.handler(bad)
	ctx := context.Background()
	if err := e.rdb.Set(ctx, h.CursorKey(testMP), "keep-me", 0).Err(); err != nil {
		t.Fatal(err)
	}
	err = h.ProcessTask(ctx, scanTask(t, testMP))
	if !errors.Is(err, marketplace.ErrPermanent) || !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("err = %v, want ErrPermanent with SkipRetry", err)
	}
	if got := e.storedCursor(t, h); got != "keep-me" {
		t.Fatalf("cursor changed to %q on a failure that was not the cursor's", got)
	}
}

func TestDecidedPostingsAreNotEnqueued(t *testing.T) {
	e := newEnv(t)
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{})
	ids := srv.Publish(20)
	decided := map[string]bool{}
	for _, id := range ids[:5] {
		e.decide(t, id)
		decided[id] = true
	}
	h := e.handler(ad)
	sum, err := ScanOnce(context.Background(), h, testMP)
	if err != nil || sum.Enqueued != 15 || sum.AlreadyDecided != 5 {
		t.Fatalf("scan: %s, %v; want 15 enqueued, 5 already decided", sum, err)
	}
	have := e.taskIDs(t, worker.QueueBids)
	for _, id := range ids {
		if have[worker.BidTaskID(testMP, id)] == decided[id] {
			t.Errorf("posting %s (decided=%v): bid task exists=%v", id, decided[id], have[worker.BidTaskID(testMP, id)])
		}
	}
}

// fixedAdapter serves one page of hand-made postings, then nothing.
type fixedAdapter struct {
	marketplace.Adapter
	postings []marketplace.Posting
}

func (a fixedAdapter) ID() string { return testMP }
func (a fixedAdapter) Scan(_ context.Context, cursor string, _ int) (marketplace.Page, error) {
	if cursor == "" {
		return marketplace.Page{Postings: a.postings, NextCursor: "c1"}, nil
	}
	return marketplace.Page{NextCursor: cursor}, nil
}

func TestInvalidPostingIDsAreCountedNotEnqueued(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	ad := fixedAdapter{postings: []marketplace.Posting{
		{MarketplaceID: testMP, ID: "ok-1", PostedAt: now},
		{MarketplaceID: testMP, ID: "has space", PostedAt: now},
		{MarketplaceID: testMP, ID: strings.Repeat("x", 300), PostedAt: now},
		{MarketplaceID: testMP, ID: "", PostedAt: now},
		{MarketplaceID: "other", ID: "ok-2", PostedAt: now},
		{MarketplaceID: testMP, ID: "ok-{3}", PostedAt: now},
	}}
	h := e.handler(ad)
	sum, err := ScanOnce(context.Background(), h, testMP)
	if err != nil || sum.Enqueued != 2 || sum.Invalid != 4 || sum.CursorAfter != "c1" {
		t.Fatalf("scan: %s, %v; want 2 enqueued, 4 invalid, cursor c1", sum, err)
	}
	if v := testutil.ToFloat64(e.metrics.invalid.WithLabelValues(testMP)); v != 4 {
		t.Errorf("bidder_postings_invalid_total = %v, want 4", v)
	}
	have := e.taskIDs(t, worker.QueueBids)
	if len(have) != 2 || !have[worker.BidTaskID(testMP, "ok-1")] || !have[worker.BidTaskID(testMP, "ok-{3}")] {
		t.Fatalf("bid tasks: %v", have)
	}
}

func TestBusyLockEndsTaskQuietly(t *testing.T) {
	e := newEnv(t)
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{})
	srv.Publish(10)
	h := e.handler(ad)
	ctx := context.Background()
	other, err := lock.NewManager(e.rdb, lock.WithKeyPrefix(DefaultLockKeyPrefix)).TryAcquire(ctx, testMP, scanLockName)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(ctx, scanTask(t, testMP)); err != nil {
		t.Fatalf("busy scan returned %v, want nil", err)
	}
	if _, err := ScanOnce(ctx, h, testMP); !errors.Is(err, ErrBusy) {
		t.Fatalf("ScanOnce while busy = %v, want ErrBusy", err)
	}
	if n := len(e.taskIDs(t, worker.QueueBids)); n != 0 {
		t.Fatalf("a busy scan enqueued %d tasks", n)
	}
	if v := testutil.ToFloat64(e.metrics.runs.WithLabelValues(testMP, ResultBusy)); v != 2 {
		t.Errorf("runs{busy} = %v, want 2", v)
	}
	if err := other.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if sum, err := ScanOnce(ctx, h, testMP); err != nil || sum.Enqueued != 10 {
		t.Fatalf("scan after release: %s, %v", sum, err)
	}
}

func TestBadScanTasksAreArchived(t *testing.T) {
	e := newEnv(t)
	_, ad, _ := startSandbox(t, sandbox.ServerConfig{})
	h := e.handler(ad)
	for _, task := range []*asynq.Task{
		asynq.NewTask(TypeScan, []byte("{not json")),
		asynq.NewTask(TypeScan, nil),
		asynq.NewTask(TypeScan, []byte(`{"marketplace":"no-such","slot":1}`)),
	} {
		if err := h.ProcessTask(context.Background(), task); !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("ProcessTask(%q) = %v, want SkipRetry", task.Payload(), err)
		}
	}
}

func TestKeyLayout(t *testing.T) {
	e := newEnv(t)
	_, ad, _ := startSandbox(t, sandbox.ServerConfig{})
	if k := e.handler(ad).CursorKey(testMP); k != "bid_scan_cursor:sbx" {
		t.Errorf("cursor key %q", k)
	}
	// With hash tags the cursor shares the scan lock's slot, which the
	// cursor-commit script needs on Redis Cluster.
	h := e.handler(ad, WithHashTags(true))
	lockKey := lock.Keys{Prefix: DefaultLockKeyPrefix, HashTags: true}.Lock(testMP, scanLockName)
	if k := h.CursorKey(testMP); k != "bid_scan_cursor:{sbx:scan}" || lockKey != "bid_scan_lock:{sbx:scan}" {
		t.Errorf("hash-tagged keys %q, %q", k, lockKey)
	}
	srv, ad2, _ := startSandbox(t, sandbox.ServerConfig{})
	srv.Publish(5)
	if sum, err := ScanOnce(context.Background(), e.handler(ad2, WithHashTags(true)), testMP); err != nil || sum.Enqueued != 5 {
		t.Fatalf("hash-tagged scan: %s, %v", sum, err)
	}
	if e.storedCursor(t, h) == "" {
		t.Error("hash-tagged cursor not stored")
	}
}

func TestQueuePerMarketplace(t *testing.T) {
	e := newEnv(t)
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{})
	ids := srv.Publish(30)
	h := e.handler(ad, WithQueuePerMarketplace(true))
	if _, err := ScanOnce(context.Background(), h, testMP); err != nil {
		t.Fatal(err)
	}
	own := e.taskIDs(t, worker.MarketplaceQueue(testMP))
	for _, id := range ids {
		if !own[worker.BidTaskID(testMP, id)] {
			t.Fatalf("posting %s has no task on %s", id, worker.MarketplaceQueue(testMP))
		}
	}
	if shared := e.taskIDs(t, worker.QueueBids); len(shared) != 0 {
		t.Fatalf("%d tasks on the shared queue", len(shared))
	}
}
