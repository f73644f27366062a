package worker_test

import (
	"context"
	"testing"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// TestBudgetSpentNotifiedOncePerWindow: with notifications on, postings
// that meet a spent budget window write one budget_spent event between
// them.
func TestBudgetSpentNotifiedOncePerWindow(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 3 })
	ps := e.postings(t)
	led := ledger.New(e.rdb, ledger.WithNotifications(true))
	h, err := worker.NewBidHandler(lock.NewManager(e.rdb), led, map[string]worker.Marketplace{
		mpID: {Adapter: e.adapter, Rules: bidAll(t), Budget: rules.NewBudget(e.rdb, rules.DefaultBudgetPrefix, 1, 10)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range ps {
		_ = h.ProcessTask(ctx, bidTask(t, p))
	}
	raw, err := e.rdb.LRange(ctx, led.OutboxKey(mpID, ""), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	spent := 0
	for _, r := range raw {
		if ev, err := ledger.ParseEvent([]byte(r)); err == nil && ev.Kind == ledger.EventBudgetSpent {
			spent++
		}
	}
	if spent != 1 {
		t.Fatalf("%d budget_spent events, want 1: %q", spent, raw)
	}
}
