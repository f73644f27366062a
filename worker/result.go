package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/bidder/bidder/ledger"
)

// TaskResult is what a finished bid task records as its asynq result (the
// web UI shows it): the posting's decision, or why the task ended without
// one (decided earlier, parked, continued in a task scheduled for a budget
// window).
type TaskResult struct {
	Decision    string    `json:"decision"` // placed, skipped, failed, dry_run, decided_earlier, parked, waiting
	State       string    `json:"state,omitempty"`
	BidID       string    `json:"bid_id,omitempty"`
	Amount      float64   `json:"amount,omitempty"`
	Currency    string    `json:"currency,omitempty"`
	Rule        string    `json:"rule,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Until       time.Time `json:"until,omitzero"`
	ContinuedIn string    `json:"continued_in,omitempty"`
}

func resultOf(state ledger.State, rule, reason, bidID string, amount float64, currency string) TaskResult {
	return TaskResult{Decision: string(state), BidID: bidID, Amount: amount, Currency: currency, Rule: rule, Reason: reason}
}

// ResultsMode says how a task's result is written.
type ResultsMode int

const (
	// ResultsInScript: the ledger script that records a final decision also
	// sets the task's result (one hash field of asynq's task, next to the
	// posting's keys): no round trip of its own. Standalone and Sentinel.
	ResultsInScript ResultsMode = iota
	// ResultsByWriter: asynq's ResultWriter, one round trip after the
	// decision: Redis Cluster, where the task lives in another slot.
	ResultsByWriter
)

// resultSink is where one task's result goes.
type resultSink struct {
	key  string              // the task's hash, for ResultsInScript
	w    *asynq.ResultWriter // nil outside an asynq server (tests)
	mode ResultsMode
	log  *zap.Logger
}

func (h *BidHandler) resultSink(ctx context.Context, t *asynq.Task) resultSink {
	s := resultSink{mode: h.resultsMode, log: h.log, w: t.ResultWriter()}
	id, okID := asynq.GetTaskID(ctx)
	q, okQ := asynq.GetQueueName(ctx)
	if okID && okQ && s.w != nil {
		s.key = TaskKey(q, id)
	}
	return s
}

// inScript is the key and value a ledger script sets for r, or nothing
// when results go through the writer.
func (s resultSink) inScript(r TaskResult) (string, []byte) {
	if s.mode != ResultsInScript || s.key == "" {
		return "", nil
	}
	b, _ := json.Marshal(r)
	return s.key, b
}

// afterScript writes r with the writer if the script did not.
func (s resultSink) afterScript(r TaskResult) {
	if s.mode == ResultsByWriter {
		s.write(r)
	}
}

// write records r with asynq's ResultWriter: for the ends no ledger script
// records (rare: decided earlier, parked, continued).
func (s resultSink) write(r TaskResult) {
	if s.w == nil {
		return
	}
	b, _ := json.Marshal(r)
	if _, err := s.w.Write(b); err != nil {
		s.log.Debug("task result not written", zap.Error(err))
	}
}

// TaskKey is the Redis key of an asynq task (asynq v0.26's layout: the
// recovery pass reads it too, and a test pins it).
func TaskKey(queue, taskID string) string { return "asynq:{" + queue + "}:t:" + taskID }

// enqueuer is the part of *asynq.Client the handler uses.
type enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// waitForBudget ends a task whose posting waits for its bid-budget window:
// a task scheduled for the window's start continues it ("waiting" is what
// it is: not a failing retry in the web UI). The budget's waiting index
// says which postings wait on which window, and tells the recovery pass
// their tasks are not lost.
func (a *attempt) waitForBudget(until time.Time) error {
	mp, id := a.p.MarketplaceID, a.p.ID
	reason := fmt.Errorf("worker: bid budget of %s spent until %s", mp, until.UTC().Format(time.RFC3339))
	if err := a.acct.Budget.Wait(a.ctx, a.budgetScope(a.acct), id, until); err != nil {
		return a.redisFailed(fmt.Errorf("worker: %w", err))
	}
	// Once per marketplace and window, whoever gets here first; a failure
	// loses the notification, never the posting.
	if err := a.ledger.NotifyBudgetSpent(a.ctx, mp, until); err != nil {
		a.log.Warn("cannot write the budget_spent notification", zap.Error(err))
	}
	if a.enqueuer == nil || a.result.w == nil {
		return retryIn(until.Sub(a.now()), false, reason)
	}
	q, _ := asynq.GetQueueName(a.ctx)
	next := BidTaskID(mp, id) + ":w" + strconv.FormatInt(until.Unix(), 10)
	t, err := NewBidTask(a.p, asynq.Queue(q), asynq.TaskID(next), asynq.ProcessAt(until), asynq.Retention(time.Hour))
	if err == nil {
		_, err = a.enqueuer.EnqueueContext(a.ctx, t)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		// Waiting in this task instead is as good, only less clear to see.
		a.log.Debug("cannot schedule the budget continuation; retrying at the window instead", zap.Error(err))
		return retryIn(until.Sub(a.now()), false, reason)
	}
	a.log.Debug("bid budget spent; continued at the next window", zap.Time("until", until), zap.String("continued_in", next))
	a.result.write(TaskResult{Decision: "waiting", Reason: "bid budget spent", Until: until, ContinuedIn: next})
	return nil
}
