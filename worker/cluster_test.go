package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
)

// TestClusterHandlerDefaults: a handler built with hash tags and nothing
// else must work on Redis Cluster. A task's hash lives in its queue's slot
// ({bids}), never in its posting's, so a ledger script that also set the
// task's result failed every attempt with CROSSSLOT and no posting was
// ever decided (the library default did that; only the app chose the
// writer). Every posting ends decided and its task carries the decision.
func TestClusterHandlerDefaults(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 3 })
	ps := e.postings(t)
	ps[2].Status = marketplace.StatusClosed // skipped by the rules

	locks := lock.NewManager(rdb, lock.WithHashTags(true))
	led := ledger.New(rdb, ledger.WithHashTags(true))
	h, err := worker.NewBidHandler(locks, led, map[string]worker.Marketplace{mpID: {Adapter: e.adapter, Rules: bidAll(t)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := worker.NewServer(rdb, worker.ServerConfig{Concurrency: 2, PollInterval: 20 * time.Millisecond, Logger: zaptest.NewLogger(t)}, locks)
	if err := srv.Start(worker.NewMux(h, worker.NewMetrics(nil), zaptest.NewLogger(t))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { _ = client.Close() })
	for _, p := range ps {
		if _, err := client.Enqueue(bidTask(t, p), asynq.Retention(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	want := map[string]string{ps[0].ID: "placed", ps[1].ID: "placed", ps[2].ID: "skipped"}
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for id, decision := range want {
		for {
			ti, err := insp.GetTaskInfo(worker.QueueBids, worker.BidTaskID(mpID, id))
			if err == nil && ti.State == asynq.TaskStateCompleted {
				var r worker.TaskResult
				if err := json.Unmarshal(ti.Result, &r); err != nil || r.Decision != decision {
					t.Fatalf("%s: result %q (%v), want decision %s", id, ti.Result, err, decision)
				}
				break
			}
			if err == nil {
				last = ti.State.String() + ": " + ti.LastErr
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not completed: %s", id, last)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	e.assertNoDuplicates(t, 2)
}
