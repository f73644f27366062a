package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// agencyEnv is a sandbox with two accounts, alice and bob, in strict mode
// (duplicates accepted, idempotency off): only bidder keeps a posting from
// getting a bid of each.
type agencyEnv struct {
	market     *sandbox.Server
	ledger     *ledger.Ledger
	alice, bob marketplace.Adapter
}

func newAgencyEnv(t *testing.T, postings int) (*agencyEnv, *env) {
	t.Helper()
	e := newEnv(t, func(c *sandbox.ServerConfig) {
		c.Postings = postings
		c.Tokens = []string{token, "alice-token", "bob-token"}
	})
	adapter := func(tok, name string) marketplace.Adapter {
		a, err := sandbox.New(marketplace.Config{ID: mpID, BaseURL: e.url, Token: tok, Account: name, RequestTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	return &agencyEnv{market: e.market, ledger: e.ledger, alice: adapter("alice-token", "alice"), bob: adapter("bob-token", "bob")}, e
}

// bidsByAccount counts the marketplace's bids per account (the sandbox
// names accounts by token), and fails on a posting with two.
func bidsByAccount(t *testing.T, ms *sandbox.Server) map[string]int {
	t.Helper()
	by, seen := map[string]int{}, map[string]string{}
	for _, b := range ms.BidOutcomes() {
		if other, dup := seen[b.PostingID]; dup {
			t.Fatalf("posting %s has bids of %s and %s: twice across the accounts", b.PostingID, other, b.Account)
		}
		seen[b.PostingID] = b.Account
		by[b.Account]++
	}
	return by
}

// TestAgencyOneBidPerPostingAcrossAccounts: four workers, each posting's
// task twice, two accounts; alice's bid budget runs out after three and
// bob bids on the rest. Every posting gets exactly one bid, and the ledger
// names the account that placed it.
func TestAgencyOneBidPerPostingAcrossAccounts(t *testing.T) {
	ae, e := newAgencyEnv(t, 12)
	ps := e.postings(t)
	handler := func() *worker.BidHandler {
		h, err := worker.NewBidHandler(lock.NewManager(e.rdb, lock.WithTTL(600*time.Millisecond)), e.ledger, map[string]worker.Marketplace{
			mpID: {Accounts: []worker.Account{
				{Adapter: ae.alice, Rules: bidAll(t), Budget: rules.NewBudget(e.rdb, "", 3, 0)},
				{Adapter: ae.bob, Rules: bidAll(t)},
			}},
		}, worker.WithSettleDelay(150*time.Millisecond), worker.WithBusyDelay(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	hs := []*worker.BidHandler{handler(), handler(), handler(), handler()}
	var wg sync.WaitGroup
	for i, p := range append(ps, ps...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := drive(t, hs[i%len(hs)], bidTask(t, p)); err != nil {
				t.Errorf("%s: %v", p.ID, err)
			}
		}()
	}
	wg.Wait()
	by := bidsByAccount(t, ae.market)
	if by[sandbox.AccountFromToken("alice-token")] != 3 || by[sandbox.AccountFromToken("bob-token")] != len(ps)-3 {
		t.Fatalf("bids by account %v, want alice 3 (her budget) and bob %d", by, len(ps)-3)
	}
	names := map[string]string{"alice": sandbox.AccountFromToken("alice-token"), "bob": sandbox.AccountFromToken("bob-token")}
	for _, b := range ae.market.BidOutcomes() {
		rec, err := e.ledger.Get(context.Background(), mpID, b.PostingID)
		if err != nil || rec.State != ledger.StatePlaced || rec.BidID != b.BidID || names[rec.Account] != b.Account {
			t.Fatalf("%s: ledger %+v (%v), marketplace says %s's bid %s", b.PostingID, rec, err, b.Account, b.BidID)
		}
	}
}

// TestAgencyReconcileAsksTheIntentsAccount: alice's worker sends her bid
// and stalls before recording it; its lock is lost. The next worker would
// pick bob (its config lists him first). It must ask alice, whose intent
// it finds, and record her bid: asking bob finds nothing, and bob's bid
// would be the posting's second.
func TestAgencyReconcileAsksTheIntentsAccount(t *testing.T) {
	ae, e := newAgencyEnv(t, 1)
	p := e.postings(t)[0]
	build := func(first, second marketplace.Adapter, opts ...worker.HandlerOption) *worker.BidHandler {
		h, err := worker.NewBidHandler(lock.NewManager(e.rdb, lock.WithTTL(600*time.Millisecond)), e.ledger, map[string]worker.Marketplace{
			mpID: {Accounts: []worker.Account{{Adapter: first, Rules: bidAll(t)}, {Adapter: second, Rules: bidAll(t)}}},
		}, append([]worker.HandlerOption{worker.WithSettleDelay(150 * time.Millisecond), worker.WithBusyDelay(20 * time.Millisecond)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	stalled, resume := make(chan *lock.Lock, 1), make(chan struct{})
	a := build(ae.alice, ae.bob, worker.WithHooks(worker.Hooks{
		AfterPlace: func(ctx context.Context, l *lock.Lock) { stalled <- l; <-resume },
	}))
	aDone := make(chan error, 1)
	go func() { aDone <- a.ProcessTask(context.Background(), bidTask(t, p)) }()
	la := <-stalled
	e.rdb.Del(context.Background(), la.Key())

	m := worker.NewMetrics(nil)
	b := build(ae.bob, ae.alice, worker.WithMetrics(m))
	if err := drive(t, b, bidTask(t, p)); err != nil {
		t.Fatal(err)
	}
	close(resume)
	<-aDone
	by := bidsByAccount(t, ae.market)
	if by[sandbox.AccountFromToken("alice-token")] != 1 || len(by) != 1 {
		t.Fatalf("bids by account %v, want alice's one", by)
	}
	if v := testutil.ToFloat64(m.Reconciliations("found")); v != 1 {
		t.Fatalf("reconciliations that found the bid: %v, want 1", v)
	}
	if rec, _ := e.ledger.Get(context.Background(), mpID, p.ID); rec.State != ledger.StatePlaced || rec.Account != "alice" {
		t.Fatalf("record %+v, want alice's placed bid", rec)
	}
}

// TestAgencyAccountsMustBeNamedAndDistinct: two adapters with one name
// would share idempotency keys and intents: refused at start.
func TestAgencyAccountsMustBeNamedAndDistinct(t *testing.T) {
	ae, e := newAgencyEnv(t, 1)
	_, err := worker.NewBidHandler(lock.NewManager(e.rdb), e.ledger, map[string]worker.Marketplace{
		mpID: {Accounts: []worker.Account{{Adapter: ae.alice, Rules: bidAll(t)}, {Adapter: ae.alice, Rules: bidAll(t)}}},
	})
	if err == nil {
		t.Fatal("two accounts named alice accepted")
	}
}
