package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap/zaptest"

	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// TestTasksCarryTheirDecisionAndBudgetWaitsAreScheduled (issue 15, item 2),
// through a real asynq server: a finished task's result is its decision
// (in either results mode), and a posting waiting for its bid-budget window
// is continued by a task scheduled for the window's start (the web UI shows
// it as scheduled, which it is) instead of a retry whose last error reads
// like a failure.
func TestTasksCarryTheirDecisionAndBudgetWaitsAreScheduled(t *testing.T) {
	for _, mode := range []worker.ResultsMode{worker.ResultsInScript, worker.ResultsByWriter} {
		t.Run(map[worker.ResultsMode]string{worker.ResultsInScript: "in script", worker.ResultsByWriter: "by writer"}[mode], func(t *testing.T) {
			e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 3 })
			ps := e.postings(t)
			ps[2].Status = marketplace.StatusClosed // skipped by the rules
			client := asynq.NewClientFromRedisClient(e.rdb)
			t.Cleanup(func() { _ = client.Close() })
			locks := lock.NewManager(e.rdb)
			h, err := worker.NewBidHandler(locks, e.ledger, map[string]worker.Marketplace{
				mpID: {Adapter: e.adapter, Rules: bidAll(t), Budget: rules.NewBudget(e.rdb, "", 1, 0)},
			}, worker.WithEnqueuer(client), worker.WithTaskResults(mode))
			if err != nil {
				t.Fatal(err)
			}
			srv := worker.NewServer(e.rdb, worker.ServerConfig{Concurrency: 1, PollInterval: 20 * time.Millisecond, Logger: zaptest.NewLogger(t)}, locks)
			if err := srv.Start(worker.NewMux(h, worker.NewMetrics(nil), zaptest.NewLogger(t))); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Shutdown(context.Background()) })
			for _, p := range ps {
				if _, err := client.Enqueue(bidTask(t, p), asynq.Retention(time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			insp := asynq.NewInspectorFromRedisClient(e.rdb)
			results := map[string]worker.TaskResult{}
			wait.Until(t, 10*time.Second, "all three tasks completed", func() bool {
				for _, p := range ps {
					ti, err := insp.GetTaskInfo(worker.QueueBids, worker.BidTaskID(mpID, p.ID))
					if err != nil || ti.State != asynq.TaskStateCompleted {
						return false
					}
					var r worker.TaskResult
					if err := json.Unmarshal(ti.Result, &r); err != nil {
						t.Fatalf("%s: result %q: %v", p.ID, ti.Result, err)
					}
					results[p.ID] = r
				}
				return true
			})

			var placed, waiting string
			for id, r := range results {
				switch r.Decision {
				case "placed":
					if r.BidID == "" || r.Amount <= 0 {
						t.Errorf("%s: placed result %+v", id, r)
					}
					placed = id
				case "waiting":
					if r.Until.IsZero() || !strings.HasPrefix(r.ContinuedIn, worker.BidTaskID(mpID, id)+":w") {
						t.Errorf("%s: waiting result %+v", id, r)
					}
					waiting = id
				case "skipped":
					if r.Rule != "status" || id != ps[2].ID {
						t.Errorf("%s: skipped result %+v", id, r)
					}
				default:
					t.Errorf("%s: result %+v", id, r)
				}
			}
			if placed == "" || waiting == "" {
				t.Fatalf("results %+v: want one placed, one waiting", results)
			}
			cont, err := insp.GetTaskInfo(worker.QueueBids, results[waiting].ContinuedIn)
			if err != nil || cont.State != asynq.TaskStateScheduled || !cont.NextProcessAt.Equal(results[waiting].Until) {
				t.Fatalf("continuation %+v, %v: want scheduled for %v", cont, err, results[waiting].Until)
			}
			if n, _ := insp.GetQueueInfo(worker.QueueBids); n.Retry != 0 {
				t.Fatalf("%d tasks in retry: waiting must not look like failing", n.Retry)
			}
			e.assertNoDuplicates(t, 1)
		})
	}
}
