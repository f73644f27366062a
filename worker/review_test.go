package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/internal/ops"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// TestReviewThenApprovedTwiceBidsOnce (issue 16, item 1): the rules send a
// posting to review; two reviewers approve it at once, with an edited
// amount and proposal; one outcome: one bid, as edited, through the whole
// pipeline.
func TestReviewThenApprovedTwiceBidsOnce(t *testing.T) {
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 1 })
	p := e.postings(t)[0]
	eng, err := rules.New(rules.Config{
		Amount: rules.AmountConfig{
			Fixed:  rules.AmountRule{Strategy: rules.StrategyFixed, Amount: 100, MaxAmount: 500},
			Hourly: rules.AmountRule{Strategy: rules.StrategyFixed, Amount: 30, MaxAmount: 500},
		},
		Proposal: rules.ProposalConfig{Template: "I can do {{.Title}}."},
		Review:   rules.ReviewConfig{All: true, Deadline: rules.Duration(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := worker.NewBidHandler(lock.NewManager(e.rdb, lock.WithTTL(600e6)), e.ledger,
		map[string]worker.Marketplace{mpID: {Adapter: e.adapter, Rules: eng}}, worker.WithSettleDelay(150e6), worker.WithBusyDelay(20e6))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	task := bidTask(t, p)
	if _, err := e.ledger.Discover(ctx, mpID, []ledger.Found{{PostingID: p.ID, Payload: task.Payload()}}); err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	rec, _ := e.ledger.Get(ctx, mpID, p.ID)
	if rec.State != ledger.StateReview || rec.Amount <= 0 || rec.Proposal == "" {
		t.Fatalf("record %+v, want it in review with the proposed bid", rec)
	}
	e.assertNoDuplicates(t, 0)

	rv := ops.Reviewer{Resumer: ops.NewResumer(e.rdb, e.ledger, false, time.Hour), Rules: map[string]*rules.Engine{mpID: eng}}
	if _, err := rv.Approve(ctx, mpID, p.ID, "ann", 900, ""); err == nil {
		t.Fatal("an amount above max_amount was approved")
	}
	var wg sync.WaitGroup
	for _, who := range []string{"ann", "bob"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := rv.Approve(ctx, mpID, p.ID, who, 420, "Edited by a human."); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	ti, err := insp.GetTaskInfo(worker.QueueBids, worker.BidTaskID(mpID, p.ID))
	if err != nil || ti.State != asynq.TaskStatePending {
		t.Fatalf("approved posting's task: %+v %v", ti, err)
	}
	if err := drive(t, h, asynq.NewTask(ti.Type, ti.Payload)); err != nil {
		t.Fatal(err)
	}
	e.assertNoDuplicates(t, 1)
	rec, _ = e.ledger.Get(ctx, mpID, p.ID)
	if rec.State != ledger.StatePlaced || rec.Amount != 420 {
		t.Fatalf("record %+v, want placed at the approved 420", rec)
	}
	if got := e.market.Proposals(p.ID); len(got) != 1 || got[0] != "Edited by a human." {
		t.Fatalf("bid proposals %q", got)
	}
	audit, _ := e.ledger.Audit(ctx, mpID, p.ID)
	approvals := 0
	for _, a := range audit {
		if a.Action == "approve" {
			approvals++
		}
	}
	if approvals != 1 {
		t.Fatalf("audit %+v: want one approval", audit)
	}
}
