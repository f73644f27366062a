package ops

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
)

// TestRetract (issue 17, item 4): the bid is withdrawn on the marketplace
// and recorded as the outcome; the posting stays placed and the pipeline
// never bids on it again; a second retract sends nothing; an answer that
// leaves it open whether the retract happened is tried again.
func TestRetract(t *testing.T) {
	srv, err := sandbox.NewServer(sandbox.ServerConfig{Tokens: []string{"tok"}, AmbiguousRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); _ = srv.Close() })
	ad, err := sandbox.New(marketplace.Config{ID: "m", BaseURL: hs.URL, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.Start(t).Client(t)
	led := ledger.New(rdb)
	ctx := context.Background()
	id := srv.Publish(1)[0]
	page, err := ad.Scan(ctx, "", 10)
	if err != nil || len(page.Postings) != 1 {
		t.Fatalf("scan: %+v, %v", page, err)
	}
	// Every created bid is answered ambiguously: find it, as the worker would.
	_, err = ad.PlaceBid(ctx, id, marketplace.Bid{Amount: page.Postings[0].Budget.Min, Currency: page.Postings[0].Budget.Currency, Proposal: "p", IdempotencyKey: "k"})
	if !errors.Is(err, marketplace.ErrAmbiguous) {
		t.Fatalf("place: %v, want ambiguous", err)
	}
	pb, found, err := ad.FindBid(ctx, id)
	if err != nil || !found {
		t.Fatalf("find: %v %v", found, err)
	}
	locks := lock.NewManager(rdb, lock.WithTTL(time.Minute))
	a, _ := locks.Prepare("m", id)
	c, err := led.Claim(ctx, a, "m", id, ledger.Decision{State: ledger.StateIntent})
	if err != nil {
		t.Fatal(err)
	}
	l := a.Held(ctx, c.Token)
	if err := led.Settle(ctx, l, "m", id, ledger.Outcome{State: ledger.StatePlaced, BidID: pb.ID, Release: true}); err != nil {
		t.Fatal(err)
	}
	l.MarkReleased()

	r := Retracter{Ledger: led, Adapters: map[string]marketplace.Adapter{"m": ad}, Backoff: time.Millisecond}
	got, err := r.Retract(ctx, "m", id, "ops@host", "client asked")
	if err != nil || got.Already || got.BidID != pb.ID {
		t.Fatalf("retract: %+v, %v", got, err)
	}
	var truth marketplace.Outcome
	for _, b := range srv.BidOutcomes() {
		if b.BidID == pb.ID {
			truth = b.Outcome
		}
	}
	if truth != marketplace.OutcomeRetracted {
		t.Fatalf("the sandbox says %q", truth)
	}
	rec, _ := led.Get(ctx, "m", id)
	if rec.State != ledger.StatePlaced || rec.Outcome != ledger.BidRetracted {
		t.Fatalf("record %+v", rec)
	}
	log, _ := led.Audit(ctx, "m", id)
	if len(log) != 1 || log[0].By != "ops@host" || log[0].Why != "client asked" || log[0].Outcome != ledger.BidRetracted {
		t.Fatalf("audit %+v", log)
	}
	if got, err := r.Retract(ctx, "m", id, "ops@host", "again"); err != nil || !got.Already {
		t.Fatalf("second retract: %+v, %v", got, err)
	}
	a, _ = locks.Prepare("m", id)
	if c, _ := led.Claim(ctx, a, "m", id, ledger.Decision{State: ledger.StateIntent}); c.Outcome != ledger.Decided {
		t.Fatalf("claim after retract: %+v", c)
	}

	if _, err := r.Retract(ctx, "m", "nothing", "ops", ""); !errors.Is(err, ledger.ErrNotPlaced) {
		t.Fatalf("retract of an undecided posting: %v", err)
	}
	if _, err := r.Retract(ctx, "x", id, "ops", ""); !errors.Is(err, ErrUnknownMarket) {
		t.Fatalf("unknown marketplace: %v", err)
	}
}
