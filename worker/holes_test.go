package worker_test

import (
	"context"
	"testing"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/marketplace/sandbox"
)

// deleteFenceCounters removes every fence counter, as an expiry would: the
// next acquisition's counter starts again from nothing.
func (e *env) deleteFenceCounters(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	keys, err := e.rdb.Keys(ctx, "bid_lock_fence*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := e.rdb.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return len(keys)
}

// TestTokenAfterFenceCounterLossStillReconciles (issue 13, item 1): an
// ambiguous answer leaves an intent with token t; the fence counter then
// expires (or is lost) before the next attempt. That attempt must still
// see the intent as an earlier acquisition's and reconcile, never take it
// for its own and POST again.
func TestTokenAfterFenceCounterLossStillReconciles(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 1; c.AmbiguousRate = 1 })
	p := e.postings(t)[0]
	h, _ := e.handler(t, nil)
	ctx := context.Background()
	err := h.ProcessTask(ctx, bidTask(t, p))
	if err == nil {
		t.Fatal("first attempt: want a retry after the ambiguous answer")
	}
	if rec, _ := e.ledger.Get(ctx, mpID, p.ID); rec.State != ledger.StateIntent {
		t.Fatalf("after the ambiguous answer the record is %+v, want an intent", rec)
	}
	if e.market.Stats().Bids != 1 {
		t.Fatalf("the ambiguous answer stored %d bids, want 1", e.market.Stats().Bids)
	}
	e.deleteFenceCounters(t)
	if err := drive(t, h, bidTask(t, p)); err != nil {
		t.Fatal(err)
	}
	e.assertNoDuplicates(t, 1)
	if rec, _ := e.ledger.Get(ctx, mpID, p.ID); rec.State != ledger.StatePlaced {
		t.Fatalf("record %+v, want placed (found by reconciliation)", rec)
	}
}
