package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/bidder/bidder/ledger"
)

// TestIntentNamesItsAccount: in agency mode the intent says which account
// is to bid, a later claim that finds it learns that account (the one to
// ask whether the bid arrived), a take-over names its own, and the placed
// record, the tracker's due bids and the report's rows keep it.
func TestIntentNamesItsAccount(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	_, a := claim(t, led, locks, "p", ledger.Decision{State: ledger.StateIntent, Account: "alice"})
	if rec, _ := led.Get(ctx, "m", "p"); rec.State != ledger.StateIntent || rec.Account != "alice" {
		t.Fatalf("intent %+v, want alice's", rec)
	}
	rdb.Del(ctx, a.Key()) // alice's worker died after (perhaps) sending
	c, b := claim(t, led, locks, "p", ledger.Decision{State: ledger.StateIntent, Account: "bob"})
	if c.Outcome != ledger.Pending || c.Earlier.Account != "alice" {
		t.Fatalf("claim over alice's intent: %+v (earlier %+v), want pending naming alice", c, c.Earlier)
	}
	// No bid of alice's: bob takes the intent over.
	if err := led.Settle(ctx, b, "m", "p", ledger.Outcome{State: ledger.StateIntent, Replaces: c.Earlier.Holder, Account: "bob"}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := led.Get(ctx, "m", "p"); rec.Account != "bob" {
		t.Fatalf("taken-over intent names %q, want bob", rec.Account)
	}
	// Bob's worker dies too; the next claim must ask bob, not alice.
	rdb.Del(ctx, b.Key())
	c, d := claim(t, led, locks, "p", ledger.Decision{State: ledger.StateIntent, Account: "alice"})
	if c.Outcome != ledger.Pending || c.Earlier.Account != "bob" {
		t.Fatalf("claim over bob's intent: %+v (earlier %+v), want pending naming bob", c, c.Earlier)
	}
	o := placed
	o.Replaces = c.Earlier.Holder
	if err := settle(ctx, led, d, "p", o); err != nil {
		t.Fatal(err)
	}
	if rec, _ := led.Get(ctx, "m", "p"); rec.State != ledger.StatePlaced || rec.Account != "bob" {
		t.Fatalf("placed %+v, want bob's bid", rec)
	}
	rows, err := led.Bids(ctx, "m", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil || len(rows) != 1 || rows[0].Account != "bob" {
		t.Fatalf("report rows %+v, %v", rows, err)
	}

	// A single-account intent after an agency one carries no stale name.
	_, e := claim(t, led, locks, "q", ledger.Decision{State: ledger.StateIntent, Account: "alice"})
	if err := settle(ctx, led, e, "q", ledger.Outcome{State: ledger.StateNone, Release: true}); err != nil {
		t.Fatal(err)
	}
	_, f := claim(t, led, locks, "q", ledger.Decision{State: ledger.StateIntent})
	if rec, _ := led.Get(ctx, "m", "q"); rec.State != ledger.StateIntent || rec.Account != "" {
		t.Fatalf("one-account intent %+v names an account", rec)
	}
	_ = f
}
