package scanner

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
)

// clock is a settable time for the sandbox and the tracker.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock        { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// placeAll bids on every posting through the adapter and records each bid
// placed in the ledger, as the worker does.
func placeAll(t *testing.T, e *env, ad marketplace.Adapter, ids []string) {
	t.Helper()
	ctx := context.Background()
	locks := lock.NewManager(e.rdb, lock.WithTTL(time.Minute))
	page, err := ad.Scan(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	cur := map[string]string{}
	for _, p := range page.Postings {
		cur[p.ID] = p.Budget.Currency
	}
	for _, id := range ids {
		pb, err := ad.PlaceBid(ctx, id, marketplace.Bid{Amount: 100, Currency: cur[id], Proposal: "p", IdempotencyKey: "k-" + id})
		if err != nil {
			t.Fatalf("place %s: %v", id, err)
		}
		a, _ := locks.Prepare(testMP, id)
		c, err := e.ledger.Claim(ctx, a, testMP, id, ledger.Decision{State: ledger.StateIntent})
		if err != nil || c.Outcome != ledger.Claimed {
			t.Fatalf("claim %s: %+v %v", id, c, err)
		}
		l := a.Held(ctx, c.Token)
		if err := e.ledger.Settle(ctx, l, testMP, id, ledger.Outcome{State: ledger.StatePlaced, BidID: pb.ID, Amount: 100, Currency: "USD", Release: true}); err != nil {
			t.Fatal(err)
		}
		l.MarkReleased()
	}
}

// makeDue brings every tracked bid's next poll to now.
func makeDue(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	k := e.ledger.PlacedKey(testMP, "x")
	ids, err := e.rdb.ZRange(ctx, k, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		e.rdb.ZAdd(ctx, k, redis.Z{Score: 0, Member: id})
	}
}

// TestTrackerRecordsTheSandboxsTruth (issue 17, item 2): every placed bid's
// outcome ends up in the ledger as the marketplace decided it, polled in the
// adapter's batches; decided bids stop being polled; bids still pending at
// the horizon are recorded as no answer.
func TestTrackerRecordsTheSandboxsTruth(t *testing.T) {
	e := newEnv(t)
	e.ledger = ledger.New(e.rdb, ledger.WithTracking(time.Minute, testMP))
	clk := newClock(time.Now())
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{DecideAfter: time.Hour, AwardRate: 0.3, Now: clk.Now})
	ids := srv.Publish(250)
	placeAll(t, e, ad, ids[:240])
	h := e.handler(ad, WithTracker(TrackOptions{Repoll: time.Hour, Horizon: 48 * time.Hour}))
	h.o.now = clk.Now
	ctx := context.Background()

	// Nothing is due before its first poll.
	sum, err := h.Track(ctx, testMP)
	if err != nil || sum.Polled != 0 || sum.Result != TrackOK {
		t.Fatalf("first run: %+v, %v", sum, err)
	}
	// Due, but the marketplace has not decided: all pending, no change.
	makeDue(t, e)
	sum, err = h.Track(ctx, testMP)
	if err != nil || sum.Polled != 240 || sum.Changed != 0 {
		t.Fatalf("pending run: %+v, %v", sum, err)
	}
	if n := testutil.ToFloat64(e.metrics.polled.WithLabelValues(testMP)); n != 240 {
		t.Fatalf("polled metric %v", n)
	}
	// An hour on, the sandbox decides them all.
	clk.Advance(2 * time.Hour)
	makeDue(t, e)
	sum, err = h.Track(ctx, testMP)
	if err != nil || sum.Polled != 240 || sum.Changed != 240 {
		t.Fatalf("decided run: %+v, %v", sum, err)
	}
	truth := map[string]marketplace.Outcome{}
	for _, b := range srv.BidOutcomes() {
		truth[b.PostingID] = b.Outcome
	}
	awarded := 0
	for _, id := range ids[:240] {
		rec, err := e.ledger.Get(ctx, testMP, id)
		if err != nil || rec.State != ledger.StatePlaced {
			t.Fatalf("%s: %+v, %v", id, rec, err)
		}
		if string(rec.Outcome) != string(truth[id]) {
			t.Fatalf("%s: ledger says %q, the sandbox %q", id, rec.Outcome, truth[id])
		}
		if rec.Outcome == ledger.BidAwarded {
			awarded++
		}
	}
	if awarded == 0 || awarded == 240 {
		t.Fatalf("%d of 240 awarded: the seeded rule should split them", awarded)
	}
	if n := testutil.ToFloat64(e.metrics.outcomes.WithLabelValues(testMP, "awarded")); int(n) != awarded {
		t.Fatalf("outcomes metric says %v awarded, the ledger %d", n, awarded)
	}
	// Decided bids leave the index: the next run asks about nothing.
	if n := e.rdb.ZCard(ctx, e.ledger.PlacedKey(testMP, "x")).Val(); n != 0 {
		t.Fatalf("%d decided bids still tracked", n)
	}
}

func TestTrackerGivesUpAtTheHorizon(t *testing.T) {
	e := newEnv(t)
	e.ledger = ledger.New(e.rdb, ledger.WithTracking(time.Minute, testMP))
	clk := newClock(time.Now())
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{Now: clk.Now}) // never decides
	ids := srv.Publish(3)
	placeAll(t, e, ad, ids)
	h := e.handler(ad, WithTracker(TrackOptions{Repoll: time.Hour, Horizon: 24 * time.Hour}))
	h.o.now = clk.Now
	ctx := context.Background()
	clk.Advance(25 * time.Hour)
	makeDue(t, e)
	sum, err := h.Track(ctx, testMP)
	if err != nil || sum.Polled != 3 || sum.NoAnswer != 3 {
		t.Fatalf("run past the horizon: %+v, %v", sum, err)
	}
	for _, id := range ids {
		if rec, _ := e.ledger.Get(ctx, testMP, id); rec.Outcome != ledger.BidNoAnswer {
			t.Fatalf("%s: outcome %q, want no_answer", id, rec.Outcome)
		}
	}
	if n := e.rdb.ZCard(ctx, e.ledger.PlacedKey(testMP, "x")).Val(); n != 0 {
		t.Fatalf("%d bids still tracked past the horizon", n)
	}
}

// An adapter without StatusReader: the run says so, nothing fails.
func TestTrackerWithoutStatusReader(t *testing.T) {
	e := newEnv(t)
	h := e.handler(scanOnly{id: testMP})
	sum, err := h.Track(context.Background(), testMP)
	if err != nil || sum.Result != TrackUnsupported {
		t.Fatalf("%+v, %v", sum, err)
	}
}

type scanOnly struct{ id string }

func (s scanOnly) ID() string      { return s.id }
func (s scanOnly) Account() string { return "a" }
func (s scanOnly) Scan(context.Context, string, int) (marketplace.Page, error) {
	return marketplace.Page{}, nil
}
func (s scanOnly) PlaceBid(context.Context, string, marketplace.Bid) (marketplace.PlacedBid, error) {
	return marketplace.PlacedBid{}, marketplace.ErrPermanent
}
func (s scanOnly) FindBid(context.Context, string) (marketplace.PlacedBid, bool, error) {
	return marketplace.PlacedBid{}, false, nil
}
