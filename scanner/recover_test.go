package scanner

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// TestLostTasksAreEnqueuedAgain (issue 13, item 6): tasks lost outside the
// worker (a failover that loses the last enqueues while the cursor
// survives, an eviction, someone deleting them in the web UI) leave their
// postings discovered and undecided. The recovery pass, after the recheck
// interval, finds them without a task and enqueues them again; postings
// decided meanwhile, and those whose task still exists, are left alone.
func TestLostTasksAreEnqueuedAgain(t *testing.T) {
	e := newEnv(t)
	e.ledger = ledger.New(e.rdb, ledger.WithRecheck(300*time.Millisecond))
	_, ad, _ := startSandbox(t, sandbox.ServerConfig{Postings: 10, Seed: 3})
	h := e.handler(ad, WithRecoverEvery(50*time.Millisecond))
	ctx := context.Background()
	if err := h.ProcessTask(ctx, scanTask(t, testMP)); err != nil {
		t.Fatal(err)
	}
	ids := e.taskIDs(t, worker.QueueBids)
	if len(ids) != 10 {
		t.Fatalf("%d bid tasks after the scan, want 10", len(ids))
	}
	var lost []string
	for id := range ids {
		if len(lost) == 4 {
			break
		}
		lost = append(lost, id)
	}
	// Two lost the way an eviction or a failover loses them (the key is
	// gone; asynq's queue list may still name it), two deleted properly.
	for i, id := range lost {
		if i < 2 {
			if n := e.rdb.Del(ctx, worker.TaskKey(worker.QueueBids, id)).Val(); n != 1 {
				t.Fatalf("task key layout: %s not found (asynq changed its layout?)", worker.TaskKey(worker.QueueBids, id))
			}
			continue
		}
		if err := e.insp.DeleteTask(worker.QueueBids, id); err != nil {
			t.Fatal(err)
		}
	}
	// Another decided meanwhile (its task, too, is gone: not enqueued again).
	decidedID := lost[3][len("bid:"+testMP+":"):]
	e.decide(t, decidedID)

	// Before the recheck interval, nothing is due.
	if err := h.ProcessTask(ctx, scanTask(t, testMP)); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(e.metrics.recovered.WithLabelValues(testMP)); got != 0 {
		t.Fatalf("recovered %v before the interval", got)
	}
	wait.Until(t, 5*time.Second, "the lost tasks enqueued again", func() bool {
		time.Sleep(60 * time.Millisecond)
		if err := h.ProcessTask(ctx, scanTask(t, testMP)); err != nil {
			t.Fatal(err)
		}
		return testutil.ToFloat64(e.metrics.recovered.WithLabelValues(testMP)) >= 3
	})

	if got := testutil.ToFloat64(e.metrics.recovered.WithLabelValues(testMP)); got != 3 {
		t.Fatalf("recovered %v, want the 3 undecided ones", got)
	}
	now := e.taskIDs(t, worker.QueueBids)
	for _, id := range lost[:3] {
		if !now[id] {
			t.Errorf("%s not enqueued again", id)
		}
	}
	if now[lost[3]] {
		t.Errorf("%s was decided, yet enqueued again", lost[3])
	}
}

// TestRecoveryKnowsWaitingFromLost: an undecided posting whose task has
// completed (it never runs again) is lost and enqueued again; one waiting
// for its bid-budget window, whose continuation is scheduled, is not.
func TestRecoveryKnowsWaitingFromLost(t *testing.T) {
	e := newEnv(t)
	e.ledger = ledger.New(e.rdb, ledger.WithRecheck(time.Millisecond))
	_, ad, _ := startSandbox(t, sandbox.ServerConfig{Postings: 2, Seed: 5})
	h := e.handler(ad, WithRecoverEvery(time.Millisecond))
	ctx := context.Background()
	if err := h.ProcessTask(ctx, scanTask(t, testMP)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id := range e.taskIDs(t, worker.QueueBids) {
		ids = append(ids, id)
	}
	// Both tasks ended without a decision: one completed for good, one
	// continued by a budget continuation scheduled an hour from now.
	for _, id := range ids {
		// As asynq completes a task with a retention: the hash's state, and
		// the ID moved from the pending list to the completed set.
		q := "asynq:{" + worker.QueueBids + "}:"
		pipe := e.rdb.TxPipeline()
		pipe.HSet(ctx, worker.TaskKey(worker.QueueBids, id), "state", "completed")
		pipe.LRem(ctx, q+"pending", 0, id)
		pipe.ZAdd(ctx, q+"completed", redis.Z{Score: float64(time.Now().Add(time.Hour).Unix()), Member: id})
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waiting := ids[1][len("bid:"+testMP+":"):]
	if err := rules.NewWaits(e.rdb, "").Add(ctx, testMP, waiting, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // both are due
	rec, ran, err := h.recovery.maybeRun(ctx, testMP)
	if err != nil || !ran {
		t.Fatal(ran, err)
	}
	if rec.Missing != 1 || rec.Enqueued != 1 {
		t.Fatalf("recovery %+v: want the completed one missing, the waiting one not", rec)
	}
}
