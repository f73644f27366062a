// Package redisscale tests bidder against Redis as it runs at scale and in
// the open: Sentinel failover, Redis Cluster with slot migration and node
// failure, TLS with client certificates and an ACL user holding only what
// bidder needs. Every Redis is a real redis-server process on loopback
// (internal/redistest); without one the tests skip, unless
// BIDDER_REQUIRE_REDIS=1. The sandbox marketplace runs in strict mode
// (idempotency off, duplicates accepted): only bidder can keep a posting
// from getting two bids, and the sandbox counts any it gets.
package redisscale

import (
	"context"
	"errors"
	"net/http/httptest"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/scanner"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

const (
	mpID  = "sandbox"
	token = "redisscale-token"
)

// market is a strict-mode sandbox marketplace and its adapter.
type market struct {
	srv     *sandbox.Server
	adapter marketplace.Adapter
}

func newMarket(t *testing.T, postings int, latency time.Duration) *market {
	t.Helper()
	ms, err := sandbox.NewServer(sandbox.ServerConfig{
		Tokens:      []string{token},
		Idempotency: sandbox.IdempotencyOff,
		Duplicates:  sandbox.DuplicatesAccept,
		Latency:     sandbox.Latency{Min: latency / 2, Max: latency},
		Postings:    postings,
		Seed:        11,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ms)
	t.Cleanup(func() { hs.Close(); ms.Close() })
	a, err := sandbox.New(marketplace.Config{ID: mpID, BaseURL: hs.URL, Token: token, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &market{srv: ms, adapter: a}
}

// postings lists everything the sandbox has published.
func (m *market) postings(t *testing.T) []marketplace.Posting {
	t.Helper()
	var all []marketplace.Posting
	cursor := ""
	for {
		page, err := m.adapter.Scan(context.Background(), cursor, 500)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Postings...)
		if len(page.Postings) == 0 || page.NextCursor == cursor || page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

func bidAll(t *testing.T) *rules.Engine {
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

// stack is one bidder instance's objects over a shared client.
type stack struct {
	locks   *lock.Manager
	ledger  *ledger.Ledger
	handler *worker.BidHandler
}

func newStack(t *testing.T, rdb redis.UniversalClient, m *market, hashTags bool, ledgerOpts ...ledger.Option) *stack {
	t.Helper()
	locks := lock.NewManager(rdb, lock.WithTTL(2*time.Second), lock.WithHashTags(hashTags))
	led := ledger.New(rdb, append([]ledger.Option{ledger.WithHashTags(hashTags)}, ledgerOpts...)...)
	h, err := worker.NewBidHandler(locks, led, map[string]worker.Marketplace{mpID: {Adapter: m.adapter, Rules: bidAll(t)}},
		worker.WithSettleDelay(300*time.Millisecond), worker.WithBusyDelay(20*time.Millisecond),
		worker.WithWaitDelay(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return &stack{locks: locks, ledger: led, handler: h}
}

// loadResult counts what a load run saw.
type loadResult struct {
	done, errors atomic.Int64
	errMu        sync.Mutex
	errSamples   map[string]int
}

func (r *loadResult) sample(err error) {
	r.errors.Add(1)
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if r.errSamples == nil {
		r.errSamples = map[string]int{}
	}
	msg := idRe.ReplaceAllString(err.Error(), "#")
	if len(msg) > 160 {
		msg = msg[:160]
	}
	if len(r.errSamples) < 12 || r.errSamples[msg] > 0 {
		r.errSamples[msg]++
	}
}

var idRe = regexp.MustCompile(`p-[0-9]+|:[0-9]{4,5}\b|[0-9]{6,}|token [0-9]+`)

func (r *loadResult) log(t *testing.T) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	for msg, n := range r.errSamples {
		t.Logf("  %5d × %s", n, msg)
	}
}

// drive runs bid tasks the way asynq would, from several instances (one
// stack each): every posting is retried until its task ends, with the
// handler's retry delay (capped); Redis errors are retried like any other.
// It returns when every posting is done or the deadline passes.
func drive(t *testing.T, stacks []*stack, postings []marketplace.Posting, perInstance int, deadline time.Time, res *loadResult) {
	t.Helper()
	work := make(chan marketplace.Posting, len(postings))
	for _, p := range postings {
		work <- p
	}
	close(work)
	var wg sync.WaitGroup
	for _, st := range stacks {
		for i := 0; i < perInstance; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range work {
					task, err := worker.NewBidTask(p)
					if err != nil {
						t.Error(err)
						return
					}
					for n := 0; ; n++ {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						err := st.handler.ProcessTask(ctx, task)
						cancel()
						if err == nil || errors.Is(err, asynq.SkipRetry) {
							res.done.Add(1)
							break
						}
						res.sample(err)
						if time.Now().After(deadline) {
							return
						}
						time.Sleep(min(worker.RetryDelay(n, err, task), 200*time.Millisecond))
					}
				}
			}()
		}
	}
	wg.Wait()
}

// runPipeline runs the whole daemon pipeline on rdb: an asynq scan task,
// the scanner enqueueing bid tasks, a worker.Server running them through
// the bid handler. It returns once every published posting is decided in
// the ledger (or fails the test at the deadline). during runs while the
// pipeline works (a disruption), once about a third of the postings are
// decided.
func runPipeline(t *testing.T, rdb redis.UniversalClient, m *market, hashTags bool, within time.Duration, log *zap.Logger, during func()) {
	t.Helper()
	if log == nil {
		log = zap.NewNop()
	}
	st := newStack(t, rdb, m, hashTags)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	met := worker.NewMetrics(prometheus.NewRegistry())
	scan := scanner.NewScanHandler(rdb, client, st.ledger, map[string]marketplace.Adapter{mpID: m.adapter}, met,
		scanner.WithHashTags(hashTags), scanner.WithPageSize(100))
	mux := worker.NewMux(st.handler, met, log)
	mux.Handle(scanner.TypeScan, scan)
	srv := worker.NewServer(rdb, worker.ServerConfig{Concurrency: 8, PollInterval: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second, Logger: log}, st.locks)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	ids := []string{}
	for _, p := range m.postings(t) {
		ids = append(ids, p.ID)
	}
	deadline := time.Now().Add(within)
	disturbed := during == nil
	for slot := time.Now().Truncate(time.Second); ; {
		states, err := st.ledger.States(context.Background(), mpID, ids)
		n := 0
		for _, s := range states {
			if s.Final() {
				n++
			}
		}
		if err == nil && n == len(ids) {
			t.Logf("all %d postings decided", n)
			return
		}
		if !disturbed && n >= len(ids)/3 {
			disturbed = true
			during()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d postings decided within %s (last error %v)", n, len(ids), within, err)
		}
		// A scan per second, as the scheduler would enqueue it: a scan
		// that died with a node is followed by the next one.
		if now := time.Now().Truncate(time.Second); now.After(slot) || n == 0 {
			slot = now
			task, err := scanner.NewScanTask(mpID, slot, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = client.Enqueue(task)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func assertNoDuplicates(t *testing.T, m *market) sandbox.Stats {
	t.Helper()
	st := m.srv.Stats()
	if st.DuplicateBids != 0 || st.PostingsWithMultipleBids != 0 {
		t.Fatalf("marketplace saw duplicate bids: %+v", st)
	}
	return st
}
