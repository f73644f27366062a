package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

func TestSameTaskToEightWorkersAtOnce(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) {
		c.Postings = 1
		c.Latency = sandbox.Latency{Min: 20 * time.Millisecond, Max: 20 * time.Millisecond}
	})
	p := e.postings(t)[0]
	reg := prometheus.NewRegistry()
	m := worker.NewMetrics(reg)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 8; i++ {
		h, _ := e.handler(t, nil, worker.WithMetrics(m))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := drive(t, h, bidTask(t, p)); err != nil {
				t.Errorf("worker: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	e.assertNoDuplicates(t, 1)
	rec, err := e.ledger.Get(context.Background(), mpID, p.ID)
	if err != nil || rec.State != ledger.StatePlaced {
		t.Fatalf("ledger: %+v, %v", rec, err)
	}
	stopped := testutil.ToFloat64(m.DuplicatesPrevented(worker.LayerLock)) + testutil.ToFloat64(m.DuplicatesPrevented(worker.LayerLedger))
	if stopped < 7 {
		t.Fatalf("lock+ledger stopped %v second attempts, want >= 7", stopped)
	}
}

// TestStalledHolderAfterClaim: the stall comes between the claim (lock and
// intent) and the bid. The next holder must wait out the intent's settle
// window, find no bid and bid; the first must not send when it wakes.
func TestStalledHolderAfterClaim(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 1 })
	p := e.postings(t)[0]
	stalled, resume := make(chan *lock.Lock, 1), make(chan struct{})
	a, _ := e.handler(t, nil, worker.WithHooks(worker.Hooks{
		BeforePlace: func(ctx context.Context, l *lock.Lock) { stalled <- l; <-resume },
	}))
	aDone := make(chan error, 1)
	go func() { aDone <- a.ProcessTask(context.Background(), bidTask(t, p)) }()
	la := <-stalled
	e.rdb.Del(context.Background(), la.Key())
	// Its watchdog notices within TTL/3: in a stopped process the monotonic
	// clock would have run out the lease instead; Check covers both.
	wait.Until(t, 2*time.Second, "stalled lock noticed lost", func() bool { return la.Lost() != nil })
	m := worker.NewMetrics(nil)
	b, _ := e.handler(t, nil, worker.WithMetrics(m))
	if err := drive(t, b, bidTask(t, p)); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(m.Reconciliations("not_found")); v != 1 {
		t.Fatalf("the next holder reconciled %v times, want once", v)
	}
	close(resume)
	if err := <-aDone; !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("stalled worker: %v, want ErrLockLost", err)
	}
	e.assertNoDuplicates(t, 1)
}

// TestStalledAfterTheBidTheNextHolderFindsIt: the first worker's bid went
// out and it stalled before recording it, past its lease. The next holder
// waits out the intent's window, finds the bid and records it; the first,
// when it wakes, is refused by the fence.
func TestStalledAfterTheBidTheNextHolderFindsIt(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 1 })
	p := e.postings(t)[0]
	ma := worker.NewMetrics(nil)
	stalled, resume := make(chan *lock.Lock, 1), make(chan struct{})
	a, _ := e.handler(t, nil, worker.WithMetrics(ma), worker.WithHooks(worker.Hooks{
		AfterPlace: func(ctx context.Context, l *lock.Lock) { stalled <- l; <-resume },
	}))
	aDone := make(chan error, 1)
	go func() { aDone <- a.ProcessTask(context.Background(), bidTask(t, p)) }()
	la := <-stalled
	e.rdb.Del(context.Background(), la.Key())
	m := worker.NewMetrics(nil)
	b, _ := e.handler(t, nil, worker.WithMetrics(m))
	if err := drive(t, b, bidTask(t, p)); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(m.Reconciliations("found")); v != 1 {
		t.Fatalf("found %v of the first worker's bids, want 1", v)
	}
	close(resume)
	if err := <-aDone; !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("stalled worker: %v, want a retry caused by ErrStale", err)
	}
	if v := testutil.ToFloat64(ma.DuplicatesPrevented(worker.LayerFence)); v != 1 {
		t.Fatalf("fence refusals counted %v, want 1", v)
	}
	e.assertNoDuplicates(t, 1)
}

func TestAmbiguousAnswersThirtyPercent(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 60; c.AmbiguousRate = 0.3 })
	reg := prometheus.NewRegistry()
	m := worker.NewMetrics(reg)
	h, _ := e.handler(t, nil, worker.WithMetrics(m))
	ps := e.postings(t)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, p := range ps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := drive(t, h, bidTask(t, p)); err != nil {
				t.Errorf("%s: %v", p.ID, err)
			}
		}()
	}
	wg.Wait()
	placed := 0
	for _, p := range ps {
		rec, err := e.ledger.Get(context.Background(), mpID, p.ID)
		if err != nil || !rec.State.Final() {
			t.Fatalf("%s not decided: %+v %v", p.ID, rec, err)
		}
		if rec.State == ledger.StatePlaced {
			placed++
		}
	}
	e.assertNoDuplicates(t, int64(placed))
	if placed == 0 {
		t.Fatal("nothing placed")
	}
	if found := testutil.ToFloat64(m.Reconciliations("found")); found == 0 {
		t.Fatal("30% ambiguous answers yet no reconciliation found a bid")
	}
}

func TestRuleSkipIsRecordedWithItsRule(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 1 })
	p := e.postings(t)[0]
	p.Status = "closed" // as the scanner saw it
	h, _ := e.handler(t, nil)
	if err := drive(t, h, bidTask(t, p)); err != nil {
		t.Fatal(err)
	}
	rec, _ := e.ledger.Get(context.Background(), mpID, p.ID)
	if rec.State != ledger.StateSkipped || rec.Rule != "status" || rec.Reason == "" {
		t.Fatalf("closed posting recorded as %+v, want skipped by rule status with a reason", rec)
	}
	e.assertNoDuplicates(t, 0)
}

func TestClosedAtMarketplaceIsFinalFailure(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 1; c.CloseAfter = time.Minute; c.Now = clock })
	p := e.postings(t)[0]
	mu.Lock()
	now = now.Add(2 * time.Minute) // closes after the scan saw it open
	mu.Unlock()
	h, _ := e.handler(t, nil)
	if err := drive(t, h, bidTask(t, p)); err != nil {
		t.Fatalf("a closed posting is a decision, not an error: %v", err)
	}
	rec, _ := e.ledger.Get(context.Background(), mpID, p.ID)
	if rec.State != ledger.StateFailed || rec.Rule != "closed" {
		t.Fatalf("recorded as %+v, want failed/closed", rec)
	}
	e.assertNoDuplicates(t, 0)
}

func TestBadPayloadsAreArchivedWithReason(t *testing.T) {
	e := newEnv(t, nil)
	h, _ := e.handler(t, nil)
	huge := `{"v":1,"posting":{"marketplace_id":"sandbox","id":"p","title":"` + strings.Repeat("x", worker.MaxPayloadBytes) + `"}}`
	for name, payload := range map[string]string{
		"empty":               ``,
		"not json":            `{"v":1,`,
		"wrong types":         `{"v":"one","posting":[]}`,
		"huge":                huge,
		"old version":         `{"v":0,"posting":{"marketplace_id":"sandbox","id":"p"}}`,
		"invalid marketplace": `{"v":1,"posting":{"marketplace_id":"Bad:Id","id":"p"}}`,
		"invalid posting":     `{"v":1,"posting":{"marketplace_id":"sandbox","id":"has space"}}`,
	} {
		err := h.ProcessTask(context.Background(), asynq.NewTask(worker.TypeBid, []byte(payload)))
		if !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, worker.ErrBadPayload) {
			t.Errorf("%s: %v, want ErrBadPayload + SkipRetry", name, err)
		}
	}
	e.assertNoDuplicates(t, 0)
}

func TestBidTaskIDs(t *testing.T) {
	if got := worker.BidTaskID("upwork", "job_1"); got != "bid:upwork:job_1" {
		t.Fatal(got)
	}
	got := worker.BidTaskID("m", "a{b}%c")
	if strings.ContainsAny(got, "{}") || got != "bid:m:a%7Bb%7D%25c" {
		t.Fatalf("escaped ID %q", got)
	}
	if worker.BidTaskID("m", "%7B") == worker.BidTaskID("m", "{") {
		t.Fatal("escaping is not injective")
	}
}

// TestBidBudgetSpentWaitsWithoutIntent: with a budget of one bid per hour,
// the second posting waits for the next window (a retry that is not a
// failure), leaves no intent behind, and is not bid on.
func TestBidBudgetSpentWaitsWithoutIntent(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 2 })
	ps := e.postings(t)
	locks := lock.NewManager(e.rdb)
	h, err := worker.NewBidHandler(locks, e.ledger, map[string]worker.Marketplace{
		mpID: {Adapter: e.adapter, Rules: bidAll(t), Budget: rules.NewBudget(e.rdb, rules.DefaultBudgetPrefix, 1, 10)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := h.ProcessTask(ctx, bidTask(t, ps[0])); err != nil {
		t.Fatalf("first posting: %v", err)
	}
	err = h.ProcessTask(ctx, bidTask(t, ps[1]))
	if err == nil || worker.IsFailure(err) {
		t.Fatalf("second posting: %v, want a wait that is not a failure", err)
	}
	if d := worker.RetryDelay(0, err, nil); d <= 0 || d > time.Hour+6*time.Minute {
		t.Fatalf("retry in %s, want until the next hour", d)
	}
	if rec, _ := e.ledger.Get(ctx, mpID, ps[1].ID); rec.State != ledger.StateNone {
		t.Fatalf("spent budget left %+v, want no record", rec)
	}
	e.assertNoDuplicates(t, 1)
}

func TestDryRunDecidesWithoutBidding(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 1 })
	p := e.postings(t)[0]
	h, err := worker.NewBidHandler(lock.NewManager(e.rdb), e.ledger, map[string]worker.Marketplace{mpID: {Adapter: e.adapter, Rules: dryRunRules(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(context.Background(), bidTask(t, p)); err != nil {
		t.Fatal(err)
	}
	rec, _ := e.ledger.Get(context.Background(), mpID, p.ID)
	if rec.State != ledger.StateDryRun || rec.Amount <= 0 {
		t.Fatalf("dry run recorded %+v, want dry_run with the amount it would bid", rec)
	}
	e.assertNoDuplicates(t, 0)
}

// dryRunRules bids on everything, in dry-run mode.
func dryRunRules(t testing.TB) *rules.Engine {
	t.Helper()
	eng, err := rules.New(rules.Config{
		DryRun: true,
		Amount: rules.AmountConfig{
			Fixed:  rules.AmountRule{Strategy: rules.StrategyFixed, Amount: 100},
			Hourly: rules.AmountRule{Strategy: rules.StrategyFixed, Amount: 30},
		},
		Proposal: rules.ProposalConfig{Template: "I can do {{.Title}}."},
	})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}
