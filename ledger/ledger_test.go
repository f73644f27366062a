package ledger_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
)

func setup(t *testing.T, opts ...ledger.Option) (*ledger.Ledger, *lock.Manager, *redistest.Server) {
	t.Helper()
	s := redistest.Start(t)
	rdb := s.Client(t)
	return ledger.New(rdb, opts...), lock.NewManager(rdb, lock.WithTTL(lock.MinTTL)), s
}

func TestLifecycleAndFinality(t *testing.T) {
	led, locks, s := setup(t, ledger.WithRetention(time.Hour))
	ctx := context.Background()
	l, err := locks.TryAcquire(ctx, "m", "p1")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	rec, err := led.Get(ctx, "m", "p1")
	if err != nil || rec.State != ledger.StateNone {
		t.Fatalf("fresh posting: %+v, %v", rec, err)
	}
	if err := led.Intent(ctx, l, "m", "p1", "w1"); err != nil {
		t.Fatal(err)
	}
	rec, _ = led.Get(ctx, "m", "p1")
	if rec.State != ledger.StateIntent || rec.Token != l.Token() || rec.Worker != "w1" || rec.At.IsZero() {
		t.Fatalf("intent record %+v", rec)
	}
	if err := led.Placed(ctx, l, "m", "p1", "w1", "b-1", 123.45, "USD"); err != nil {
		t.Fatal(err)
	}
	rec, _ = led.Get(ctx, "m", "p1")
	if rec.State != ledger.StatePlaced || rec.BidID != "b-1" || rec.Amount != 123.45 || rec.Currency != "USD" {
		t.Fatalf("placed record %+v", rec)
	}
	// Final means final: no state, not even from the same holder, replaces it.
	for name, write := range map[string]func() error{
		"intent":  func() error { return led.Intent(ctx, l, "m", "p1", "w1") },
		"skipped": func() error { return led.Skipped(ctx, l, "m", "p1", "x", "y") },
		"failed":  func() error { return led.Failed(ctx, l, "m", "p1", "x", "y") },
		"clear":   func() error { return led.ClearIntent(ctx, l, "m", "p1") },
	} {
		if err := write(); !errors.Is(err, ledger.ErrDecided) {
			t.Errorf("%s over placed: %v, want ErrDecided", name, err)
		}
	}
	if ttl := s.Client(t).PTTL(ctx, led.Key("m", "p1")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("record TTL %s, want (0, 1h]", ttl)
	}
}

func TestStaleHolderIsRefused(t *testing.T) {
	led, locks, s := setup(t)
	ctx := context.Background()
	old, err := locks.TryAcquire(ctx, "m", "p")
	if err != nil {
		t.Fatal(err)
	}
	// The old holder's lease runs out while it stalls; a new holder comes.
	s.Client(t).Del(ctx, old.Key())
	cur, err := locks.TryAcquire(ctx, "m", "p")
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Release(ctx)
	// The new holder has written nothing yet: the fence counter alone must
	// stop the old one from starting a bid.
	if err := led.Intent(ctx, old, "m", "p", "old"); !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("stale intent: %v, want ErrStale", err)
	}
	if err := led.Intent(ctx, cur, "m", "p", "cur"); err != nil {
		t.Fatal(err)
	}
	if err := led.Placed(ctx, old, "m", "p", "old", "b-old", 1, "USD"); !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("stale final write: %v, want ErrStale", err)
	}
	rec, _ := led.Get(ctx, "m", "p")
	if rec.State != ledger.StateIntent || rec.Worker != "cur" {
		t.Fatalf("record after stale writes: %+v", rec)
	}
}

func TestRecordTokenFencesEvenWithoutCounter(t *testing.T) {
	// If the fence counter is gone (expired, or lost on failover), the
	// record's own token still refuses an older writer.
	led, locks, s := setup(t)
	ctx := context.Background()
	old, _ := locks.TryAcquire(ctx, "m", "p")
	s.Client(t).Del(ctx, old.Key())
	cur, _ := locks.TryAcquire(ctx, "m", "p")
	defer cur.Release(ctx)
	if err := led.Intent(ctx, cur, "m", "p", "cur"); err != nil {
		t.Fatal(err)
	}
	s.Client(t).Del(ctx, cur.FenceKey())
	if err := led.Intent(ctx, old, "m", "p", "old"); !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("older token over a newer record: %v, want ErrStale", err)
	}
}

func TestEarlierIntentMustBeResolved(t *testing.T) {
	led, locks, _ := setup(t)
	ctx := context.Background()
	a, _ := locks.TryAcquire(ctx, "m", "p")
	if err := led.Intent(ctx, a, "m", "p", "a"); err != nil {
		t.Fatal(err)
	}
	a.Release(ctx)
	b, _ := locks.TryAcquire(ctx, "m", "p")
	defer b.Release(ctx)
	// a's bid may be in flight: b may neither start its own nor record a
	// decision that hides it, until it has reconciled.
	for name, write := range map[string]func() error{
		"intent":  func() error { return led.Intent(ctx, b, "m", "p", "b") },
		"skipped": func() error { return led.Skipped(ctx, b, "m", "p", "x", "y") },
		"failed":  func() error { return led.Failed(ctx, b, "m", "p", "x", "y") },
		"dry_run": func() error { return led.DryRun(ctx, b, "m", "p", "b", 1, "USD") },
	} {
		err := write()
		var pe *ledger.PendingError
		if !errors.Is(err, ledger.ErrPending) || !errors.As(err, &pe) || pe.Token != a.Token() || pe.At.IsZero() {
			t.Errorf("%s over an earlier intent: %v, want a PendingError naming token %d", name, err, a.Token())
		}
	}
	// Reconciliation found a's bid: placed may replace the intent.
	if err := led.Placed(ctx, b, "m", "p", "a", "b-1", 10, "USD"); err != nil {
		t.Fatalf("placed over an earlier intent: %v", err)
	}
}

func TestClearIntent(t *testing.T) {
	led, locks, s := setup(t)
	ctx := context.Background()
	a, _ := locks.TryAcquire(ctx, "m", "p")
	if err := led.Intent(ctx, a, "m", "p", "a"); err != nil {
		t.Fatal(err)
	}
	if err := led.ClearIntent(ctx, a, "m", "p"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := led.Get(ctx, "m", "p"); rec.State != ledger.StateNone {
		t.Fatalf("own intent not cleared: %+v", rec)
	}
	if err := led.Intent(ctx, a, "m", "p", "a"); err != nil {
		t.Fatal(err)
	}
	// a's lease runs out; b takes over; a may no longer clear anything.
	s.Client(t).Del(ctx, a.Key())
	b, _ := locks.TryAcquire(ctx, "m", "p")
	defer b.Release(ctx)
	if err := led.ClearIntent(ctx, a, "m", "p"); !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("stale clear: %v, want ErrStale", err)
	}
	// b, after reconciling (no bid found), clears a's intent and goes on.
	if err := led.ClearIntent(ctx, b, "m", "p"); err != nil {
		t.Fatal(err)
	}
	if err := led.Intent(ctx, b, "m", "p", "b"); err != nil {
		t.Fatalf("intent after clearing the earlier one: %v", err)
	}
}

func TestDecidedBatch(t *testing.T) {
	led, locks, _ := setup(t)
	ctx := context.Background()
	ids := make([]string, 10)
	for i := range ids {
		ids[i] = "p" + strconv.Itoa(i)
		l, _ := locks.TryAcquire(ctx, "m", ids[i])
		switch i % 3 {
		case 0:
			_ = led.Skipped(ctx, l, "m", ids[i], "budget_range", "too cheap")
		case 1:
			_ = led.Intent(ctx, l, "m", ids[i], "w")
		}
		l.Release(ctx)
	}
	got, err := led.Decided(ctx, "m", ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range got {
		if want := i%3 == 0; d != want {
			t.Errorf("%s decided=%v, want %v", ids[i], d, want)
		}
	}
}

func TestCorruptRecordIsAnErrorNotAPanic(t *testing.T) {
	led, _, s := setup(t)
	ctx := context.Background()
	rdb := s.Client(t)
	for i, fields := range []map[string]any{
		{"s": "weird", "t": "1", "at": "1"},
		{"s": "placed", "t": "x", "at": "1"},
		{"s": "placed", "t": "1", "at": "soon"},
		{"s": "placed", "t": "1", "at": "1", "amt": "lots"},
		{"t": "1"},
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
}

func TestHashTagKeys(t *testing.T) {
	led := ledger.New(nil, ledger.WithHashTags(true))
	if got := led.Key("m", "p"); got != "bid_ledger:{m:p}" {
		t.Fatalf("key %q", got)
	}
}

// TestSameTokenTwiceAfterFailover: a new master that lost the lock and the
// fence counter's last increment hands the same token to a second holder.
// Only the holder name tells them apart, and only the current holder may
// write.
func TestSameTokenTwiceAfterFailover(t *testing.T) {
	led, locks, s := setup(t)
	ctx := context.Background()
	rdb := s.Client(t)
	a, err := locks.TryAcquire(ctx, "m", "p")
	if err != nil {
		t.Fatal(err)
	}
	// The failover: the lock key and the last INCR never reached the replica.
	rdb.Del(ctx, a.Key())
	rdb.Decr(ctx, a.FenceKey())
	b, err := locks.TryAcquire(ctx, "m", "p")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release(ctx)
	if b.Token() != a.Token() {
		t.Fatalf("setup: tokens %d and %d, want the same", a.Token(), b.Token())
	}
	if err := led.Intent(ctx, b, "m", "p", "b"); err != nil {
		t.Fatal(err)
	}
	if err := led.Intent(ctx, a, "m", "p", "a"); !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("second holder of the same token wrote an intent: %v", err)
	}
	if err := led.Placed(ctx, a, "m", "p", "a", "b-a", 1, "USD"); !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("second holder of the same token recorded a bid: %v", err)
	}
	if rec, _ := led.Get(ctx, "m", "p"); rec.Worker != "b" || rec.State != ledger.StateIntent {
		t.Fatalf("record %+v, want b's intent", rec)
	}
}
