package report_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/internal/ops"
	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/report"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/scanner"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// TestAgencyOutcomesAreAskedOfTheAccountThatBid (issue 17, items 5-6): two
// accounts share one marketplace in agency mode, each with its own rules.
// Every posting gets at most one bid, the tracker asks each bid's own
// account (the sandbox tells an account only about its own bids), the
// report's per-account counts equal the sandbox's truth, and a retract
// goes to the account that placed the bid.
func TestAgencyOutcomesAreAskedOfTheAccountThatBid(t *testing.T) {
	const mp, n = "agency", 300
	// The sandbox's clock jumps past its decisions once the retract is done.
	var later atomic.Int64
	srv, err := sandbox.NewServer(sandbox.ServerConfig{Tokens: []string{"alice-token", "bob-token"}, Postings: n,
		DecideAfter: time.Hour, AwardRate: 0.3, Seed: 11, Duplicates: sandbox.DuplicatesAccept,
		Now: func() time.Time { return time.Now().Add(time.Duration(later.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); _ = srv.Close() })
	adapter := func(tok, name string) marketplace.Adapter {
		a, err := sandbox.New(marketplace.Config{ID: mp, BaseURL: hs.URL, Token: tok, Account: name})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	alice, bob := adapter("alice-token", "alice"), adapter("bob-token", "bob")
	engine := func(include ...string) *rules.Engine {
		e, err := rules.New(rules.Config{
			Keywords: rules.KeywordConfig{Include: include},
			Amount: rules.AmountConfig{Fixed: rules.AmountRule{Strategy: rules.StrategyRangePoint, Point: 0},
				Hourly: rules.AmountRule{Strategy: rules.StrategyRangePoint, Point: 0}},
			Proposal: rules.ProposalConfig{Template: "I can do {{.Title}}."},
		})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	led := ledger.New(rdb, ledger.WithTracking(time.Millisecond, mp))
	h, err := worker.NewBidHandler(lock.NewManager(rdb), led, map[string]worker.Marketplace{mp: {Accounts: []worker.Account{
		{Adapter: alice, Rules: engine("api", "data")},
		{Adapter: bob, Rules: engine("web", "app", "api")},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	postings := scanAll(t, alice)
	start := time.Now()
	for _, p := range append(postings, postings...) { // every task twice
		task, err := worker.NewBidTask(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.ProcessTask(ctx, asynq.NewTask(task.Type(), task.Payload())); err != nil {
			t.Fatalf("%s: %v", p.ID, err)
		}
	}
	names := map[string]string{sandbox.AccountFromToken("alice-token"): "alice", sandbox.AccountFromToken("bob-token"): "bob"}
	bidOn := map[string]string{}
	for _, b := range srv.BidOutcomes() {
		if other, dup := bidOn[b.PostingID]; dup {
			t.Fatalf("%s has bids of %s and %s", b.PostingID, other, names[b.Account])
		}
		bidOn[b.PostingID] = names[b.Account]
	}
	perAccount := map[string]int{}
	for _, a := range bidOn {
		perAccount[a]++
	}
	if perAccount["alice"] == 0 || perAccount["bob"] == 0 {
		t.Fatalf("bids per account %v: the test needs both to bid", perAccount)
	}

	// A retract goes to the account that bid: the sandbox refuses another
	// account's retract of it as not found.
	var bobs string
	for p, a := range bidOn {
		if a == "bob" {
			bobs = p
			break
		}
	}
	r := ops.Retracter{Ledger: led, Adapters: map[string]marketplace.Adapter{mp: alice}}
	if _, err := r.Retract(ctx, mp, bobs, "test", ""); err == nil || errors.Is(err, ops.ErrUnknownAccount) == false {
		t.Fatalf("retract without bob's adapter: %v, want ErrUnknownAccount", err)
	}
	r.Accounts = map[string][]marketplace.Adapter{mp: {alice, bob}}
	if _, err := r.Retract(ctx, mp, bobs, "test", "checking"); err != nil {
		t.Fatalf("retract of bob's bid: %v", err)
	}
	if rec, _ := led.Get(ctx, mp, bobs); rec.Outcome != ledger.BidRetracted || rec.Account != "bob" {
		t.Fatalf("after the retract: %+v", rec)
	}

	later.Store(int64(2 * time.Hour))
	if n := undecided(srv); n > 0 {
		t.Fatalf("%d bids still undecided by the sandbox", n)
	}
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { _ = client.Close() })
	sh := scanner.NewScanHandler(rdb, client, led, map[string]marketplace.Adapter{mp: alice}, nil,
		scanner.WithTracker(scanner.TrackOptions{MaxBids: 2 * n}),
		scanner.WithAccounts(map[string][]marketplace.Adapter{mp: {alice, bob}}))
	sum, err := sh.Track(ctx, mp)
	if err != nil || sum.Result != scanner.TrackOK || sum.Unknown != 0 || sum.Polled != len(bidOn)-1 {
		t.Fatalf("track: %+v, %v (want the %d unretracted bids polled, none unknown)", sum, err, len(bidOn)-1)
	}

	rep, err := report.Build(ctx, led, nil, []string{mp}, start.Add(-time.Minute), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*report.Counts{"alice": {}, "bob": {}}
	for _, b := range srv.BidOutcomes() {
		count(want[names[b.Account]], b.Outcome)
	}
	seen := 0
	for _, g := range rep.Markets[0].Groups {
		if g.Dimension != "account" {
			continue
		}
		seen++
		w := want[g.Value]
		if w == nil || g.Bids != w.Bids || g.Awarded != w.Awarded || g.Rejected != w.Rejected || g.Retracted != w.Retracted || g.Pending != 0 {
			t.Fatalf("account %q: %+v, the sandbox's truth %+v", g.Value, g.Counts, w)
		}
	}
	if seen != 2 || want["bob"].Retracted != 1 {
		t.Fatalf("%d account groups (want 2), bob's retracted %d (want 1)", seen, want["bob"].Retracted)
	}

}
