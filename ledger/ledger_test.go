package ledger_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
)

func setup(t *testing.T, opts ...ledger.Option) (*ledger.Ledger, *lock.Manager, *redis.Client) {
	t.Helper()
	s := redistest.Start(t)
	rdb := s.Client(t)
	return ledger.New(rdb, opts...), lock.NewManager(rdb, lock.WithTTL(time.Minute)), rdb
}

var (
	bid  = ledger.Decision{State: ledger.StateIntent}
	skip = ledger.Decision{State: ledger.StateSkipped, Rule: "keywords", Reason: "too far"}
)

// claim runs one claim as the worker does, returning the Lock when the
// outcome holds one.
func claim(t *testing.T, led *ledger.Ledger, locks *lock.Manager, id string, d ledger.Decision) (ledger.Claim, *lock.Lock) {
	t.Helper()
	a, err := locks.Prepare("m", id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := led.Claim(context.Background(), a, "m", id, d)
	if err != nil {
		t.Fatalf("claim %s: %v", id, err)
	}
	if !c.Outcome.Holds() {
		a.Busy()
		return c, nil
	}
	l := a.Held(context.Background(), c.Token)
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	return c, l
}

func settle(ctx context.Context, led *ledger.Ledger, l *lock.Lock, id string, o ledger.Outcome) error {
	err := led.Settle(ctx, l, "m", id, o)
	if err == nil && o.Release {
		l.MarkReleased()
	}
	return err
}

var placed = ledger.Outcome{State: ledger.StatePlaced, BidID: "b-1", Amount: 123.45, Currency: "USD", Release: true}

func TestClaimSkipIsFinalAtOnceAndHoldsNoLock(t *testing.T) {
	led, locks, rdb := setup(t, ledger.WithRetention(time.Hour))
	ctx := context.Background()
	c, l := claim(t, led, locks, "p", skip)
	if c.Outcome != ledger.Recorded || c.State != ledger.StateSkipped || l != nil || c.Token <= 0 {
		t.Fatalf("claim: %+v", c)
	}
	rec, err := led.Get(ctx, "m", "p")
	if err != nil || rec.State != ledger.StateSkipped || rec.Rule != "keywords" || rec.Reason != "too far" || rec.Token != c.Token {
		t.Fatalf("record %+v, %v", rec, err)
	}
	if n := rdb.Exists(ctx, "bid_lock:m:p").Val(); n != 0 {
		t.Fatal("a skip left the posting's lock behind")
	}
	if ttl := rdb.PTTL(ctx, led.Key("m", "p")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("record TTL %s, want (0, 1h]", ttl)
	}
}

func TestClaimSettlePlacedAndFinalityEverywhere(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	c, l := claim(t, led, locks, "p", bid)
	if c.Outcome != ledger.Claimed || l == nil {
		t.Fatalf("claim: %+v", c)
	}
	rec, _ := led.Get(ctx, "m", "p")
	if rec.State != ledger.StateIntent || rec.Token != l.Token() || rec.Holder != l.Holder() || rec.At.IsZero() || !rec.SettledAt.After(rec.At.Add(-time.Millisecond)) {
		t.Fatalf("intent record %+v", rec)
	}
	if err := settle(ctx, led, l, "p", placed); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, l.Key()).Val(); n != 0 {
		t.Fatal("settle with Release left the lock")
	}
	rec, _ = led.Get(ctx, "m", "p")
	if rec.State != ledger.StatePlaced || rec.BidID != "b-1" || rec.Amount != 123.45 || rec.Currency != "USD" {
		t.Fatalf("placed record %+v", rec)
	}
	// Final means final: every claim finds it decided, holding nothing.
	for _, d := range []ledger.Decision{bid, skip, {State: ledger.StateDryRun, Amount: 1, Currency: "USD"}} {
		if c, l := claim(t, led, locks, "p", d); c.Outcome != ledger.Decided || c.State != ledger.StatePlaced || l != nil {
			t.Errorf("claim %s over placed: %+v", d.State, c)
		}
	}
	// And no settle by a current holder changes it either.
	a, _ := locks.TryAcquire(ctx, "m", "p")
	defer a.Release(ctx)
	for _, st := range []ledger.State{ledger.StateFailed, ledger.StateNone, ledger.StateIntent} {
		if err := led.Settle(ctx, a, "m", "p", ledger.Outcome{State: st}); !errors.Is(err, ledger.ErrDecided) {
			t.Errorf("settle %q over placed: %v, want ErrDecided", st, err)
		}
	}
}

// TestStaleHolderIsRefused: a holder stalls past its lease; another takes
// the posting. The stalled one can no longer record anything.
func TestStaleHolderIsRefused(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	_, old := claim(t, led, locks, "p", bid)
	rdb.Del(ctx, old.Key()) // its lease ran out
	c, cur := claim(t, led, locks, "p", bid)
	if c.Outcome != ledger.Pending || c.Earlier.Holder != old.Holder() || cur.Token() <= old.Token() {
		t.Fatalf("claim after the stall: %+v (old token %d)", c, old.Token())
	}
	for _, o := range []ledger.Outcome{placed, {State: ledger.StateNone}, {State: ledger.StateFailed, Rule: "closed"}} {
		if err := led.Settle(ctx, old, "m", "p", o); !errors.Is(err, ledger.ErrStale) {
			t.Errorf("stalled holder's settle %q: %v, want ErrStale", o.State, err)
		}
	}
	if rec, _ := led.Get(ctx, "m", "p"); rec.State != ledger.StateIntent || rec.Holder != old.Holder() {
		t.Fatalf("record %+v, want old's intent untouched", rec)
	}
}

// TestEarlierIntentMustBeResolved: an intent left by a crashed attempt means
// a bid may exist. The next claim, whatever it decided, gets the posting to
// reconcile, and only an outcome that says it resolves that intent may
// replace it.
func TestEarlierIntentMustBeResolved(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	_, a := claim(t, led, locks, "p", bid)
	rdb.Del(ctx, a.Key()) // a crashed
	for _, d := range []ledger.Decision{skip, {State: ledger.StateDryRun, Amount: 1, Currency: "USD"}} {
		c, b := claim(t, led, locks, "p", d)
		if c.Outcome != ledger.Pending || c.Earlier.Holder != a.Holder() || c.Earlier.Token != a.Token() || c.Earlier.At.IsZero() {
			t.Fatalf("claim %s over an earlier intent: %+v", d.State, c)
		}
		err := led.Settle(ctx, b, "m", "p", ledger.Outcome{State: ledger.StateFailed, Rule: "x"})
		var pe *ledger.PendingError
		if !errors.As(err, &pe) || !errors.Is(err, ledger.ErrPending) || pe.Holder != a.Holder() {
			t.Fatalf("failed over an earlier intent it does not resolve: %v", err)
		}
		if err := b.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c, b := claim(t, led, locks, "p", bid)
	// Reconciliation found a's bid.
	o := placed
	o.Replaces = c.Earlier.Holder
	if err := settle(ctx, led, b, "p", o); err != nil {
		t.Fatalf("placed over the reconciled intent: %v", err)
	}
}

// TestReconciledNothingTakesOverTheIntent: no bid found for the earlier
// intent; the reconciler takes it over and bids under the same lock.
func TestReconciledNothingTakesOverTheIntent(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	_, a := claim(t, led, locks, "p", bid)
	rdb.Del(ctx, a.Key())
	c, b := claim(t, led, locks, "p", bid)
	if err := led.Settle(ctx, b, "m", "p", ledger.Outcome{State: ledger.StateIntent, Replaces: c.Earlier.Holder, Settle: time.Second}); err != nil {
		t.Fatal(err)
	}
	rec, _ := led.Get(ctx, "m", "p")
	if rec.State != ledger.StateIntent || rec.Holder != b.Holder() || rec.Token != b.Token() {
		t.Fatalf("after the take-over: %+v", rec)
	}
	if err := settle(ctx, led, b, "p", placed); err != nil {
		t.Fatal(err)
	}
}

// TestSettleWindowComesFromTheIntent: the intent carries how long its
// request may be in flight; a later claim waits exactly that long.
func TestSettleWindowComesFromTheIntent(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	d := bid
	d.Settle = 400 * time.Millisecond
	_, a := claim(t, led, locks, "p", d)
	rdb.Del(ctx, a.Key())
	c, l := claim(t, led, locks, "p", bid) // this claimer's own Settle is 0
	if c.Outcome != ledger.Settling || l != nil || c.RetryIn <= 0 || c.RetryIn > 400*time.Millisecond || c.Earlier.Holder != a.Holder() {
		t.Fatalf("claim inside the window: %+v", c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Outcome == ledger.Settling {
		if time.Now().After(deadline) {
			t.Fatal("the window never ended")
		}
		time.Sleep(c.RetryIn)
		c, _ = claim(t, led, locks, "p", bid)
	}
	if c.Outcome != ledger.Pending {
		t.Fatalf("claim after the window: %+v", c)
	}
}

// TestTokensExceedTheRecordEvenIfTheCounterIsLost (issue 13, item 1): the
// shared counter is reset (lost on a failover, restored from an old copy):
// the next token still exceeds every token the record carries, so an
// earlier intent is never taken for the claimer's own.
func TestTokensExceedTheRecordEvenIfTheCounterIsLost(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ { // push the counter up
		claim(t, led, locks, "other"+strconv.Itoa(i), skip)
	}
	_, a := claim(t, led, locks, "p", bid)
	rdb.Del(ctx, a.Key(), a.FenceKey())
	c, b := claim(t, led, locks, "p", bid)
	if c.Outcome != ledger.Pending || b.Token() <= a.Token() {
		t.Fatalf("claim after the counter was lost: %+v, token %d vs earlier %d", c, b.Token(), a.Token())
	}
	if v, _ := rdb.Get(ctx, a.FenceKey()).Int64(); v < b.Token() {
		t.Fatalf("counter %d left below the token it handed out (%d)", v, b.Token())
	}
}

// TestSameTokenTwiceAfterFailover: a failover lost a's whole claim (lock,
// intent and the counter's increment): b gets a's token again. Only the
// holder tells them apart, and only the lock's holder may write.
func TestSameTokenTwiceAfterFailover(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	_, a := claim(t, led, locks, "p", bid)
	rdb.Del(ctx, a.Key(), led.Key("m", "p"))
	rdb.Decr(ctx, a.FenceKey())
	_, b := claim(t, led, locks, "p", bid)
	if b.Token() != a.Token() {
		t.Fatalf("setup: tokens %d and %d, want the same", a.Token(), b.Token())
	}
	if err := led.Settle(ctx, a, "m", "p", placed); !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("the other holder of the same token recorded a bid: %v", err)
	}
	if rec, _ := led.Get(ctx, "m", "p"); rec.Holder != b.Holder() || rec.State != ledger.StateIntent {
		t.Fatalf("record %+v, want b's intent", rec)
	}
}

func TestNothingPlacedMakesThePostingUndecidedAgain(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	found := []ledger.Found{{PostingID: "p", Payload: []byte(`{"v":1}`)}}
	if _, err := led.Discover(ctx, "m", found); err != nil {
		t.Fatal(err)
	}
	_, a := claim(t, led, locks, "p", bid)
	if err := settle(ctx, led, a, "p", ledger.Outcome{State: ledger.StateNone, Release: true}); err != nil {
		t.Fatal(err)
	}
	if rdb.Exists(ctx, a.Key()).Val() != 0 {
		t.Fatal("lock left")
	}
	rec, _ := led.Get(ctx, "m", "p")
	if rec.State != ledger.StateNone || rec.Discovered.IsZero() {
		t.Fatalf("after nothing was placed: %+v", rec)
	}
	if p, _ := led.Payload(ctx, "m", "p"); string(p) != `{"v":1}` {
		t.Fatalf("payload %q, want it kept for recovery", p)
	}
	if c, _ := claim(t, led, locks, "p", bid); c.Outcome != ledger.Claimed {
		t.Fatalf("claim after nothing was placed: %+v", c)
	}
}

func TestBusyLockIsReportedWithItsLease(t *testing.T) {
	led, locks, _ := setup(t)
	ctx := context.Background()
	held, err := locks.TryAcquire(ctx, "m", "p")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(ctx)
	c, l := claim(t, led, locks, "p", skip)
	if c.Outcome != ledger.Busy || l != nil || c.RetryIn <= 0 || c.RetryIn > time.Minute {
		t.Fatalf("claim of a held posting: %+v", c)
	}
	if rec, _ := led.Get(ctx, "m", "p"); rec.State != ledger.StateNone {
		t.Fatalf("a busy claim wrote %+v", rec)
	}
}

func TestCorruptRecordIsAnErrorNotAPanic(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	for i, fields := range []map[string]any{
		{"s": "weird", "t": "1", "at": "1"},
		{"s": "placed", "t": "x", "at": "1"},
		{"s": "placed", "t": "1", "at": "soon"},
		{"s": "placed", "t": "1", "at": "1", "amt": "lots"},
		{"s": "placed", "t": "1"},
		{"s": "parked", "ps": "weird", "t": "1", "at": "1"},
	} {
		id := "bad" + strconv.Itoa(i)
		rdb.HSet(ctx, led.Key("m", id), fields)
		if _, err := led.Get(ctx, "m", id); !errors.Is(err, ledger.ErrCorrupt) {
			t.Errorf("record %v: %v, want ErrCorrupt", fields, err)
		}
	}
	rdb.Set(ctx, led.Key("m", "string"), "not a hash", 0)
	if _, err := led.Get(ctx, "m", "string"); err == nil {
		t.Error("a string where a hash belongs gave no error")
	}
	a, _ := locks.Prepare("m", "string")
	if _, err := led.Claim(ctx, a, "m", "string", bid); err == nil {
		t.Error("claim over a string where a hash belongs gave no error")
	}
}

// TestEveryKeyOfAPostingSharesItsSlot: with hash tags, the record, the lock,
// the fence counter and both indexes of a posting are in one Cluster slot,
// so one script may touch them all.
func TestEveryKeyOfAPostingSharesItsSlot(t *testing.T) {
	led := ledger.New(nil, ledger.WithHashTags(true))
	keys := lock.Keys{Prefix: lock.DefaultKeyPrefix, HashTags: true}
	if got := led.Key("m", "p"); got != "bid_ledger:{m:p}" {
		t.Fatalf("key %q", got)
	}
	for _, id := range []string{"p", "p-000123", "a{b}", "}{", "x{y}z"} {
		want := lock.KeySlot(led.Key("m", id))
		for _, k := range []string{keys.Lock("m", id), keys.Fence("m", id), led.OpenKey("m", id), led.ParkedKey("m", id)} {
			if lock.KeySlot(k) != want {
				t.Errorf("posting %q: %s in slot %d, record in %d", id, k, lock.KeySlot(k), want)
			}
		}
	}
	plain := ledger.New(nil)
	if plain.OpenKey("m", "p") != "bid_ledger_open:m" || plain.ParkedKey("m", "p") != "bid_ledger_parked:m" {
		t.Fatalf("index keys without hash tags: %q %q", plain.OpenKey("m", "p"), plain.ParkedKey("m", "p"))
	}
}
