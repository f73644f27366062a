package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bidder/bidder/ledger"
)

// TestParkKeepsAnIntentAndResumeReconcilesFirst (issue 13, item 4): a
// posting parked with an unresolved intent must come back from a resume
// still holding it, so the next attempt asks the marketplace before
// anything is sent.
func TestParkKeepsAnIntentAndResumeReconcilesFirst(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	if _, err := led.Discover(ctx, "m", []ledger.Found{{PostingID: "p", Payload: []byte(`{"v":1}`)}}); err != nil {
		t.Fatal(err)
	}
	_, a := claim(t, led, locks, "p", bid)
	if err := led.Park(ctx, a.Key(), a.FenceKey(), a.Holder(), "m", "p", "attempts_exhausted", "find bid: 503 x10"); err != nil {
		t.Fatal(err)
	}
	a.MarkReleased()
	if rdb.Exists(ctx, a.Key()).Val() != 0 {
		t.Fatal("park left its lock")
	}
	rec, _ := led.Get(ctx, "m", "p")
	if rec.State != ledger.StateParked || rec.ParkedFrom != ledger.StateIntent || rec.ParkRule != "attempts_exhausted" ||
		rec.ParkReason == "" || rec.ParkedAt.IsZero() || rec.Holder != a.Holder() || rec.Token <= a.Token() {
		t.Fatalf("parked record %+v", rec)
	}
	ps, err := led.Parked(ctx, "m", 0)
	if err != nil || len(ps) != 1 || ps[0].PostingID != "p" || ps[0].Since.IsZero() {
		t.Fatalf("parked list %+v, %v", ps, err)
	}
	if n := rdb.ZCard(ctx, led.OpenKey("m", "p")).Val(); n != 0 {
		t.Fatal("a parked posting is still listed as open (recovery would enqueue it)")
	}
	// While parked, nothing runs: every claim says so, holding nothing.
	if c, l := claim(t, led, locks, "p", bid); c.Outcome != ledger.Parked || c.Rule != "attempts_exhausted" || l != nil {
		t.Fatalf("claim of a parked posting: %+v", c)
	}
	// The old holder, if it wakes, can record nothing.
	if err := led.Settle(ctx, a, "m", "p", placed); !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("settle by the holder that was parked over: %v", err)
	}

	payload, err := led.Resume(ctx, "m", "p")
	if err != nil || string(payload) != `{"v":1}` {
		t.Fatalf("resume: %q, %v", payload, err)
	}
	if _, err := led.Resume(ctx, "m", "p"); !errors.Is(err, ledger.ErrNotParked) {
		t.Fatalf("second resume: %v, want ErrNotParked", err)
	}
	if ps, _ := led.Parked(ctx, "m", 0); len(ps) != 0 {
		t.Fatalf("still listed as parked: %+v", ps)
	}
	c, _ := claim(t, led, locks, "p", skip)
	if c.Outcome != ledger.Pending || c.Earlier.Holder != a.Holder() {
		t.Fatalf("claim after resume: %+v, want to reconcile a's intent first", c)
	}
}

func TestParkRefusesWhatIsDecidedOrInProgress(t *testing.T) {
	led, locks, _ := setup(t)
	ctx := context.Background()
	claim(t, led, locks, "done", skip)
	k := locks.Keys()
	if err := led.Park(ctx, k.Lock("m", "done"), k.Fence("m", "done"), "", "m", "done", "r", "x"); !errors.Is(err, ledger.ErrDecided) {
		t.Fatalf("park of a decided posting: %v", err)
	}
	_, held := claim(t, led, locks, "busy", bid) // another worker is on it
	if err := led.Park(ctx, held.Key(), held.FenceKey(), "", "m", "busy", "r", "x"); !errors.Is(err, ledger.ErrLocked) {
		t.Fatalf("park while another worker holds the lock: %v", err)
	}
	// A posting with nothing recorded (its claims kept failing) parks too.
	if err := led.Park(ctx, k.Lock("m", "none"), k.Fence("m", "none"), "", "m", "none", "attempts_exhausted", "x"); err != nil {
		t.Fatal(err)
	}
	if err := led.Park(ctx, k.Lock("m", "none"), k.Fence("m", "none"), "", "m", "none", "attempts_exhausted", "x"); err != nil {
		t.Fatalf("parking a parked posting again: %v", err)
	}
	if rec, err := led.Get(ctx, "m", "none"); err != nil || rec.State != ledger.StateParked || rec.ParkedFrom != ledger.StateNone {
		t.Fatalf("record %+v, %v", rec, err)
	}
	if _, err := led.Resume(ctx, "m", "none"); err != nil {
		t.Fatal(err)
	}
	if rec, err := led.Get(ctx, "m", "none"); err != nil || rec.State != ledger.StateNone {
		t.Fatalf("resumed from nothing: %+v, %v", rec, err)
	}
}

// TestDiscoveredPostingsComeDueUntilDecided (issue 13, item 6): the open
// index lists what a scan found and no decision has closed yet; the
// recovery pass takes each when its check is due, and not again until the
// next interval.
func TestDiscoveredPostingsComeDueUntilDecided(t *testing.T) {
	led, locks, rdb := setup(t, ledger.WithRecheck(200*time.Millisecond))
	ctx := context.Background()
	found := []ledger.Found{{PostingID: "a", Payload: []byte("A")}, {PostingID: "b", Payload: []byte("B")}, {PostingID: "c", Payload: []byte("C")}}
	ds, err := led.Discover(ctx, "m", found)
	if err != nil || len(ds) != 3 || ds[0] != ledger.Open {
		t.Fatalf("discover: %v, %v", ds, err)
	}
	claim(t, led, locks, "a", skip) // decided: leaves the index
	if p, _ := led.Payload(ctx, "m", "a"); p != nil {
		t.Fatalf("a decided posting kept its payload %q", p)
	}
	if due, _ := led.Due(ctx, "m", 100); len(due) != 0 {
		t.Fatalf("due before the interval: %v", due)
	}
	var due []string
	deadline := time.Now().Add(5 * time.Second)
	for len(due) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		due, _ = led.Due(ctx, "m", 100)
	}
	if len(due) != 2 || due[0] == "a" || due[1] == "a" {
		t.Fatalf("due %v, want b and c", due)
	}
	if again, _ := led.Due(ctx, "m", 100); len(again) != 0 {
		t.Fatalf("taken twice within one interval: %v", again)
	}
	// Discovering them again neither duplicates nor postpones them.
	ds, _ = led.Discover(ctx, "m", found)
	if ds[0] != ledger.Known || ds[1] != ledger.Open {
		t.Fatalf("second discover %v, want a known, b open", ds)
	}
	if n := rdb.ZCard(ctx, led.OpenKey("m", "b")).Val(); n != 2 {
		t.Fatalf("open index holds %d", n)
	}
}
