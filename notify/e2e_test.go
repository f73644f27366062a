package notify

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bidder/bidder/internal/wait"
)

// waitDelivered waits until every channel has n events and nothing of the
// notify queue is left to run.
func (e *env) waitDelivered(t *testing.T, n int) {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	wait.Until(t, 20*time.Second, "every event at every channel", func() bool {
		_, ok, _, _ := e.hook.snapshot()
		if len(ok) < n || len(e.slack.got()) < n || len(e.tg.got()) < n {
			return false
		}
		qi, err := insp.GetQueueInfo(Queue)
		return err == nil && qi.Pending+qi.Active+qi.Scheduled+qi.Retry == 0
	})

}

// TestEachEventReachesEachChannelOnce (issue 16 item 3): the ledger's
// scripts write the outbox, the sweeper enqueues, asynq runs the handler,
// and each event reaches each channel exactly once, through a Slack 429
// with Retry-After and a Telegram retry_after on the way; sweeping again
// afterwards sends nothing.
func TestEachEventReachesEachChannelOnce(t *testing.T) {
	e := newEnv(t, 1, 1)
	e.placed(t, "p-1")
	e.review(t, "p-2")
	e.parked(t, "p-3")
	if n := e.outboxLen(t); n != 3 {
		t.Fatalf("outbox holds %d, want 3", n)
	}
	e.serve(t, NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics)))
	sw := NewSweeper(e.rdb, e.client, e.led, e.cfg, e.metrics, nil)
	sw.Start()
	defer sw.Shutdown()
	e.waitDelivered(t, 3)
	if err := sw.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.outboxLen(t); n != 0 {
		t.Fatalf("outbox still holds %d", n)
	}

	keys, ok, bodies, bad := e.hook.snapshot()
	want := []string{"bid_placed:m:p-1", "posting_parked:m:p-3", "review_needed:m:p-2"}
	got := slices.Sorted(func(yield func(string) bool) {
		for k := range ok {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(got, want) || bad != 0 {
		t.Fatalf("webhook keys %v (bad signatures %d), want %v", got, bad, want)
	}
	for k, n := range keys {
		if n != 1 || ok[k] != 1 {
			t.Errorf("webhook got %s %d times", k, n)
		}
	}
	for _, b := range bodies {
		if b.Marketplace != mp || b.Text == "" || b.AtMs == 0 {
			t.Errorf("webhook body %+v", b)
		}
	}
	for name, f := range map[string]*fakeChat{"slack": e.slack, "telegram": e.tg} {
		texts := f.got()
		slices.Sort(texts)
		if len(texts) != 3 || !strings.HasPrefix(texts[0], "bid placed on m p-1: 100 USD") ||
			!strings.HasPrefix(texts[1], "posting parked on m p-3: attempts_exhausted: find bid: 503") ||
			!strings.HasPrefix(texts[2], "review needed on m p-2: 900 EUR (amount above 500)") {
			t.Errorf("%s got %q", name, texts)
		}
	}
	for _, ch := range []string{"hook", "slack", "tg"} {
		if n := testutil.ToFloat64(e.metrics.sent.WithLabelValues(ch, "bid_placed")); n != 1 {
			t.Errorf("%s: sent_total{bid_placed} = %v", ch, n)
		}
		if n := testutil.ToFloat64(e.metrics.ambiguous.WithLabelValues(ch)); n != 0 {
			t.Errorf("%s: ambiguous_total = %v", ch, n)
		}
	}
	// The 429s were retries, counted, not deliveries.
	if n := testutil.ToFloat64(e.metrics.failed.WithLabelValues("slack", ReasonRetryable)); n != 1 {
		t.Errorf("slack failed{retryable} = %v, want 1 (the 429)", n)
	}
}

// TestSweepCrashBeforePop: a sweep that enqueued and died before popping
// (the entries are still there) is followed by one that enqueues the same
// tasks again: asynq refuses them by ID, and each event is sent once.
func TestSweepCrashBeforePop(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.placed(t, "p-1")
	e.parked(t, "p-2")
	entries := e.outboxEntries(t)
	sw := NewSweeper(e.rdb, e.client, e.led, e.cfg, e.metrics, nil)
	ctx := context.Background()
	if err := sw.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// The crash: the pop undone.
	for _, en := range entries {
		e.rdb.RPush(ctx, e.led.OutboxKeys(mp)[0], en)
	}
	if err := sw.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(e.metrics.swept.WithLabelValues("duplicate")); n != 6 {
		t.Fatalf("swept{duplicate} = %v, want 6 (2 events x 3 channels)", n)
	}
	if n := testutil.ToFloat64(e.metrics.swept.WithLabelValues("enqueued")); n != 6 {
		t.Fatalf("swept{enqueued} = %v, want 6", n)
	}
	if n := e.outboxLen(t); n != 0 {
		t.Fatalf("outbox holds %d after the second sweep", n)
	}
	e.serve(t, NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics)))
	e.waitDelivered(t, 2)
	keys, _, _, _ := e.hook.snapshot()
	for k, n := range keys {
		if n != 1 {
			t.Errorf("webhook got %s %d times", k, n)
		}
	}
	if len(e.slack.got()) != 2 || len(e.tg.got()) != 2 {
		t.Fatalf("slack %q, telegram %q", e.slack.got(), e.tg.got())
	}
}

// TestPopTakesOnlyWhatWasRead: entries appended after the read stay, and
// entries the cap popped meanwhile are not taken twice.
func TestPopTakesOnlyWhatWasRead(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	key := e.led.OutboxKeys(mp)[0]
	e.rdb.RPush(ctx, key, "a", "b", "c")
	e.rdb.LPop(ctx, key)       // the cap, between read and pop
	e.rdb.RPush(ctx, key, "d") // a new event
	n, err := popScript.Run(ctx, e.rdb, []string{key}, "a", "b", "c").Int()
	if err != nil || n != 2 {
		t.Fatalf("popped %d, %v; want 2", n, err)
	}
	if rest := e.rdb.LRange(ctx, key, 0, -1).Val(); !slices.Equal(rest, []string{"d"}) {
		t.Fatalf("left %q, want [d]", rest)
	}
	// Nothing read is at the head: nothing popped.
	if n, _ := popScript.Run(ctx, e.rdb, []string{key}, "x", "y").Int(); n != 0 {
		t.Fatalf("popped %d of entries it never read", n)
	}
}

// TestSweepLease: while another instance holds a marketplace's lease, the
// sweep leaves its outbox alone.
func TestSweepLease(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	e.placed(t, "p-1")
	e.rdb.Set(ctx, DefaultKeyPrefix+"_sweep:"+mp, "other", time.Minute)
	sw := NewSweeper(e.rdb, e.client, e.led, e.cfg, e.metrics, nil)
	if err := sw.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.outboxLen(t); n != 1 {
		t.Fatalf("swept under another's lease: outbox %d", n)
	}
	e.rdb.Del(ctx, DefaultKeyPrefix+"_sweep:"+mp)
	if err := sw.Sweep(ctx); err != nil || e.outboxLen(t) != 0 {
		t.Fatalf("sweep: %v, outbox %d", err, e.outboxLen(t))
	}
	if e.rdb.Exists(ctx, DefaultKeyPrefix+"_sweep:"+mp).Val() != 0 {
		t.Fatal("the lease outlived the sweep")
	}
}

// TestEventFilters: a channel receives only its events.
func TestEventFilters(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.cfg.Routes[1].Events = []string{"posting_parked"}
	e.cfg.Routes[2].Events = []string{}
	e.placed(t, "p-1")
	sw := NewSweeper(e.rdb, e.client, e.led, e.cfg, e.metrics, nil)
	if err := sw.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(e.metrics.swept.WithLabelValues("enqueued")); n != 1 {
		t.Fatalf("enqueued %v, want 1 (the webhook only)", n)
	}
}
