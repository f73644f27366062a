package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
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

// TestUnauthorizedNotifiedOncePerHour (issue 16, item 3): a marketplace
// that refuses the account's token is a process-level event, not a
// posting's: every posting that meets the 401 waits, and between them they
// write one marketplace_unauthorized event for the hour.
func TestUnauthorizedNotifiedOncePerHour(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 3 })
	ps := e.postings(t)
	bad, err := sandbox.New(marketplace.Config{ID: mpID, BaseURL: e.url, Token: "not-the-token", RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(e.rdb, ledger.WithNotifications(true))
	h, err := worker.NewBidHandler(lock.NewManager(e.rdb), led, map[string]worker.Marketplace{mpID: {Adapter: bad, Rules: bidAll(t)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range ps {
		if err := h.ProcessTask(ctx, bidTask(t, p)); err == nil {
			t.Fatalf("%s: a refused token must not end the task", p.ID)
		}
	}
	raw, err := e.rdb.LRange(ctx, led.OutboxKey(mpID, ""), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []ledger.Event
	for _, r := range raw {
		if ev, err := ledger.ParseEvent([]byte(r)); err == nil && ev.Kind == ledger.EventMarketplaceUnauthorized {
			got = append(got, ev)
		}
	}
	if len(got) != 1 || got[0].PostingID != "" || got[0].Reason == "" || strings.Contains(got[0].Reason, "not-the-token") {
		t.Fatalf("marketplace_unauthorized events %+v, want one, with a reason and no token: %q", got, raw)
	}
	e.assertNoDuplicates(t, 0)
}
