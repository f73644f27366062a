package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
)

// TestScriptsRunTwiceActOnce (issue 13, item 3): a reply lost after the
// script ran makes go-redis run it again. Each ledger script's second run
// must report what the first did, not act a second time or call it a
// conflict.
func TestScriptsRunTwiceActOnce(t *testing.T) {
	s := redistest.Start(t)
	d := redistest.NewReplyDropper(t, s)
	rdb := redis.NewClient(&redis.Options{Addr: d.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	admin := s.Client(t)
	led := ledger.New(rdb)
	locks := lock.NewManager(rdb, lock.WithTTL(time.Minute))
	ctx := context.Background()
	// Cache every script, so a dropped reply is a real run's.
	if _, err := led.Discover(ctx, "m", []ledger.Found{{PostingID: "warm", Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	_, w := claim(t, led, locks, "warm", bid)
	if err := led.Park(ctx, w.Key(), w.FenceKey(), w.Holder(), "m", "warm", "r", "why"); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Resume(ctx, "m", "warm"); err != nil {
		t.Fatal(err)
	}
	wc, w := claim(t, led, locks, "warm", bid) // pending: its own intent came back
	o := placed
	o.Replaces = wc.Earlier.Holder
	if err := settle(ctx, led, w, "warm", o); err != nil {
		t.Fatal(err)
	}

	lost := func(match string) {
		t.Helper()
		d.DropReplies(match, 1)
	}
	check := func(what string) {
		t.Helper()
		if d.Dropped() == 0 {
			t.Fatalf("%s: no reply was dropped", what)
		}
		d.DropReplies("", 0)
	}

	// Claim for a bid, reply lost: the second run hands back the same
	// intent and token.
	a, _ := locks.Prepare("m", "p1")
	lost(a.Holder())
	c, err := led.Claim(ctx, a, "m", "p1", bid)
	check("claim")
	if err != nil || c.Outcome != ledger.Claimed {
		t.Fatalf("claim with a lost reply: %+v, %v", c, err)
	}
	rec, _ := led.Get(ctx, "m", "p1")
	if rec.Token != c.Token || rec.Holder != a.Holder() {
		t.Fatalf("claim gave token %d, the record holds %+v", c.Token, rec)
	}
	l := a.Held(ctx, c.Token)

	// Settle, reply lost: ok, not "lock not held".
	lost(l.Holder())
	if err := led.Settle(ctx, l, "m", "p1", placed); err != nil {
		t.Fatalf("settle with a lost reply: %v", err)
	}
	check("settle")
	l.MarkReleased()
	if admin.Exists(ctx, l.Key()).Val() != 0 {
		t.Fatal("lock left after settle")
	}

	// A skip, reply lost: recorded, not "decided" (which the worker would
	// count as a duplicate stopped).
	a, _ = locks.Prepare("m", "p2")
	lost(a.Holder())
	c, err = led.Claim(ctx, a, "m", "p2", skip)
	check("skip")
	if err != nil || c.Outcome != ledger.Recorded {
		t.Fatalf("skip with a lost reply: %+v, %v", c, err)
	}

	// A claim that found an earlier intent: the lock is held, with a token
	// above the intent's.
	_, e := claim(t, led, locks, "p3", bid)
	admin.Del(ctx, e.Key())
	a, _ = locks.Prepare("m", "p3")
	lost(a.Holder())
	c, err = led.Claim(ctx, a, "m", "p3", bid)
	check("pending claim")
	if err != nil || c.Outcome != ledger.Pending || c.Token <= e.Token() || admin.Get(ctx, a.Key()).Val() != a.Holder() {
		t.Fatalf("pending claim with a lost reply: %+v, %v", c, err)
	}
	l = a.Held(ctx, c.Token)

	// Park (under that lock), reply lost: parked once, lock released.
	lost("attempts") // the park's rule
	if err := led.Park(ctx, l.Key(), l.FenceKey(), l.Holder(), "m", "p3", "attempts", "ran out"); err != nil {
		t.Fatalf("park with a lost reply: %v", err)
	}
	check("park")
	l.MarkReleased()
	if rec, _ := led.Get(ctx, "m", "p3"); rec.State != ledger.StateParked || rec.ParkedFrom != ledger.StateIntent {
		t.Fatalf("after park: %+v", rec)
	}
	// Resume, reply lost: the second run says "not parked"; the posting is
	// open again either way, with its intent (so it reconciles first).
	d.DropReplies("p3", 1)
	_, err = led.Resume(ctx, "m", "p3")
	check("resume")
	if rec, _ := led.Get(ctx, "m", "p3"); rec.State != ledger.StateIntent {
		t.Fatalf("after resume (%v): %+v, want the intent back", err, rec)
	}

	// Budget-free discovery, reply lost: one entry, the first payload.
	d.DropReplies("p4", 1)
	if _, err := led.Discover(ctx, "m", []ledger.Found{{PostingID: "p4", Payload: []byte("first")}}); err != nil {
		t.Fatalf("discover with a lost reply: %v", err)
	}
	check("discover")
	open, _ := admin.ZRange(ctx, led.OpenKey("m", "p4"), 0, -1).Result()
	if len(open) != 2 || open[0] != "p3" || open[1] != "p4" { // warm and p1 are final, p2 never discovered
		t.Fatalf("open index holds %v, want [p3 p4]", open)
	}
	if p, _ := led.Payload(ctx, "m", "p4"); string(p) != "first" {
		t.Fatalf("payload %q", p)
	}
}
