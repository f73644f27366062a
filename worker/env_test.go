package worker_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

const (
	mpID  = "sandbox"
	token = "worker-test-token"
)

// env is one test's world: a real redis-server, a sandbox marketplace in
// strict mode (idempotency off, duplicates accepted: only bidder can keep a
// posting from getting two bids) and the ledger over them.
type env struct {
	closers []func()
	redis   *redistest.Server
	rdb     *redis.Client
	market  *sandbox.Server
	url     string
	adapter marketplace.Adapter
	ledger  *ledger.Ledger
}

func newEnv(t testing.TB, tune func(*sandbox.ServerConfig), opts ...redistest.Option) *env {
	t.Helper()
	rs := redistest.Start(t, opts...)
	cfg := sandbox.ServerConfig{
		Tokens:      []string{token},
		Idempotency: sandbox.IdempotencyOff,
		Duplicates:  sandbox.DuplicatesAccept,
		Seed:        7,
	}
	if tune != nil {
		tune(&cfg)
	}
	ms, err := sandbox.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ms)
	a, err := sandbox.New(marketplace.Config{ID: mpID, BaseURL: hs.URL, Token: token, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rdb := rs.Client(t)
	e := &env{redis: rs, rdb: rdb, market: ms, url: hs.URL, adapter: a, ledger: ledger.New(rdb),
		closers: []func(){func() { hs.Close(); _ = ms.Close() }, func() { _ = rdb.Close() }, rs.Stop}}
	t.Cleanup(e.close)
	return e
}

// close stops the sandbox and Redis now (a benchmark runs many
// environments in one test); the test's cleanup calls it again, harmlessly.
func (e *env) close() {
	for _, c := range e.closers {
		c()
	}
	e.closers = nil
}

// bidAll is a rule set that bids on every open posting.
func bidAll(t testing.TB) *rules.Engine {
	t.Helper()
	e, err := rules.New(rules.Config{
		Amount: rules.AmountConfig{
			Fixed:  rules.AmountRule{Strategy: rules.StrategyFixed, Amount: 100},
			Hourly: rules.AmountRule{Strategy: rules.StrategyFixed, Amount: 30},
		},
		Proposal: rules.ProposalConfig{Template: "I can do {{.Title}}."},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// handler builds a worker as a separate instance would: its own lock
// Manager (its own holder names) over the shared Redis.
func (e *env) handler(t *testing.T, lockOpts []lock.Option, opts ...worker.HandlerOption) (*worker.BidHandler, *lock.Manager) {
	t.Helper()
	// A short lease keeps the send window (a third of it) and so the
	// settle window after an ambiguous answer short.
	locks := lock.NewManager(e.rdb, append([]lock.Option{lock.WithTTL(600 * time.Millisecond)}, lockOpts...)...)
	base := []worker.HandlerOption{worker.WithSettleDelay(150 * time.Millisecond), worker.WithBusyDelay(20 * time.Millisecond), worker.WithWaitDelay(50 * time.Millisecond)}
	h, err := worker.NewBidHandler(locks, e.ledger, map[string]worker.Marketplace{
		mpID: {Adapter: e.adapter, Rules: bidAll(t)},
	}, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return h, locks
}

// postings scans everything the sandbox has published.
func (e *env) postings(t testing.TB) []marketplace.Posting {
	t.Helper()
	var all []marketplace.Posting
	cursor := ""
	for {
		page, err := e.adapter.Scan(context.Background(), cursor, 500)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Postings...)
		if len(page.Postings) == 0 || page.NextCursor == cursor {
			return all
		}
		cursor = page.NextCursor
	}
}

func bidTask(t testing.TB, p marketplace.Posting) *asynq.Task {
	t.Helper()
	task, err := worker.NewBidTask(p)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// drive runs a task the way asynq would: again after each retry, waiting
// the delay the handler asked for (capped), until it ends or is archived.
func drive(t *testing.T, h asynq.Handler, task *asynq.Task) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; ; n++ {
		err := h.ProcessTask(context.Background(), task)
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still retrying after 30s: %v", task.Type(), err)
		}
		time.Sleep(min(worker.RetryDelay(n, err, task), 300*time.Millisecond))
	}
}

// assertOneBidEach checks the marketplace's own count: no posting got two
// bids, and bids equals the number placed in the ledger.
func (e *env) assertNoDuplicates(t *testing.T, wantBids int64) {
	t.Helper()
	st := e.market.Stats()
	if st.DuplicateBids != 0 || st.PostingsWithMultipleBids != 0 {
		t.Fatalf("marketplace saw duplicates: %+v", st)
	}
	if wantBids >= 0 && st.Bids != wantBids {
		t.Fatalf("marketplace has %d bids, want %d (stats %+v)", st.Bids, wantBids, st)
	}
}
