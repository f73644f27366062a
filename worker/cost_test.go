package worker_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// TestRoundTripsPerPosting (issue 14): bidder's own Redis round trips,
// counted by a go-redis hook on the handler's client (a pipeline is one):
// a skipped posting costs 1 (the claim), a placed one 2 (claim, settle),
// and a bid budget adds 1.
func TestRoundTripsPerPosting(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 5 })
	ps := e.postings(t)
	var n atomic.Int64
	own := redis.NewClient(&redis.Options{Addr: e.redis.Addr()})
	t.Cleanup(func() { _ = own.Close() })
	own.AddHook(counter{&n})
	led := ledger.New(own)
	// The lease outlives the test, so no renewal adds a round trip.
	locks := lock.NewManager(own, lock.WithTTL(time.Minute))
	handler := func(budget *rules.Budget) *worker.BidHandler {
		h, err := worker.NewBidHandler(locks, led, map[string]worker.Marketplace{mpID: {Adapter: e.adapter, Rules: bidAll(t), Budget: budget}})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	run := func(h *worker.BidHandler, p marketplace.Posting) int64 {
		t.Helper()
		// Every script cached first: a NOSCRIPT answer would add one.
		before := n.Load()
		if err := h.ProcessTask(context.Background(), bidTask(t, p)); err != nil {
			t.Fatal(err)
		}
		return n.Load() - before
	}
	budget := rules.NewBudget(own, "", 100, 1000)
	run(handler(budget), ps[3]) // the claim, settle and budget scripts cached
	closed := ps[4]
	closed.Status = marketplace.StatusClosed // the rules skip it
	if got := run(handler(nil), closed); got != 1 {
		t.Errorf("a skipped posting took %d round trips, want 1", got)
	}
	if got := run(handler(nil), ps[1]); got != 2 {
		t.Errorf("a placed posting took %d round trips, want 2", got)
	}
	if got := run(handler(budget), ps[2]); got != 3 {
		t.Errorf("a placed posting with a bid budget took %d round trips, want 3", got)
	}
	e.assertNoDuplicates(t, 3)
}

// TestMemoryPerDecidedPosting (issue 14): every key a decided posting
// leaves in Redis (its ledger record; the lock is gone, the fence counter
// is shared, the discovery payload and index entry are removed with the
// decision) stays within 250 bytes by MEMORY USAGE.
func TestMemoryPerDecidedPosting(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 2 })
	ps := e.postings(t)
	ps[1].Status = marketplace.StatusClosed
	h, _ := e.handler(t, nil)
	ctx := context.Background()
	for _, p := range ps {
		payload := bidTask(t, p).Payload()
		if _, err := e.ledger.Discover(ctx, mpID, []ledger.Found{{PostingID: p.ID, Payload: payload}}); err != nil {
			t.Fatal(err)
		}
		if err := h.ProcessTask(ctx, bidTask(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []ledger.State{ledger.StatePlaced, ledger.StateSkipped} {
		key := e.ledger.Key(mpID, ps[i].ID)
		rec, _ := e.ledger.Get(ctx, mpID, ps[i].ID)
		if rec.State != want {
			t.Fatalf("%s: %+v, want %s", ps[i].ID, rec, want)
		}
		var left []string
		for _, k := range e.rdb.Keys(ctx, "*"+ps[i].ID+"*").Val() {
			left = append(left, k)
		}
		if len(left) != 1 || left[0] != key {
			t.Fatalf("%s leaves keys %v, want only its record", ps[i].ID, left)
		}
		if n := e.rdb.ZScore(ctx, e.ledger.OpenKey(mpID, ps[i].ID), ps[i].ID).Err(); n != redis.Nil {
			t.Fatalf("%s is still in the open index", ps[i].ID)
		}
		mem := e.rdb.MemoryUsage(ctx, key).Val()
		t.Logf("%s record: %d bytes by MEMORY USAGE (%s)", want, mem, strings.Join(fieldsOf(t, e, key), ","))
		if mem > 250 {
			t.Errorf("a %s posting costs %d bytes, want <= 250", want, mem)
		}
	}
}

func fieldsOf(t *testing.T, e *env, key string) []string {
	t.Helper()
	var out []string
	for k, v := range e.rdb.HGetAll(context.Background(), key).Val() {
		out = append(out, k+"="+v)
	}
	return out
}
