package scanner

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker/rules"
)

// review puts postingID in review until then, as the rules would.
func (e *env) review(t *testing.T, postingID string, until time.Time) {
	t.Helper()
	a, err := lock.NewManager(e.rdb).Prepare(testMP, postingID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.ledger.Claim(context.Background(), a, testMP, postingID, ledger.Decision{State: ledger.StateReview,
		Amount: 300, Currency: "USD", Proposal: "hi", Reason: "amount above 200", ReviewUntil: until})
	if err != nil || c.Outcome != ledger.InReview {
		t.Fatalf("review %s: %+v, %v", postingID, c, err)
	}
}

// TestClosedPostingsLeaveReview: the recovery pass asks the sandbox (over
// HTTP) about each posting in review; those it reports closed end as
// expired with rule posting_closed, and a reviewer's approval afterwards
// sends nothing; the open ones stay in review; one past its deadline
// expires with rule review_deadline. The metric counts each by reason.
func TestClosedPostingsLeaveReview(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	srv, ad, _ := startSandbox(t, sandbox.ServerConfig{Seed: 5, CloseAfter: time.Hour, Now: now})
	closed := srv.Publish(3)
	mu.Lock()
	clock = clock.Add(2 * time.Hour) // the first three are closed now
	mu.Unlock()
	open := srv.Publish(2)
	for _, id := range append(append([]string{}, closed...), open...) {
		e.review(t, id, time.Now().Add(24*time.Hour))
	}
	late := srv.Publish(1)[0] // open, but nobody reviewed it in time
	e.review(t, late, time.Now().Add(-time.Second))
	ctx := context.Background()
	h := e.handler(ad, WithRecoverEvery(time.Hour))
	if err := h.ProcessTask(ctx, scanTask(t, testMP)); err != nil {
		t.Fatal(err)
	}
	for _, id := range closed {
		rec, err := e.ledger.Get(ctx, testMP, id)
		if err != nil || rec.State != ledger.StateExpired || rec.Rule != "posting_closed" {
			t.Errorf("closed %s: %+v, %v; want expired, posting_closed", id, rec, err)
		}
		_, err = e.ledger.Review(ctx, testMP, id, ledger.Review{Action: ledger.Approve, By: "ann"})
		if !errors.Is(err, ledger.ErrNotInReview) {
			t.Errorf("approving closed %s: %v, want ErrNotInReview", id, err)
		}
	}
	left, err := e.ledger.Reviews(ctx, testMP, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != len(open) {
		t.Fatalf("in review after the pass: %+v, want the %d open ones", left, len(open))
	}
	for _, q := range left {
		if q.PostingID != open[0] && q.PostingID != open[1] {
			t.Errorf("%s still in review, but it is closed", q.PostingID)
		}
	}
	if n := e.logs.FilterMessage("reviews of closed postings ended").Len(); n != 1 {
		t.Errorf("%d log lines for the ended reviews, want 1", n)
	}
	if got := testutil.ToFloat64(e.metrics.reviews.WithLabelValues(testMP, ReviewEndedClosed)); got != float64(len(closed)) {
		t.Errorf("bidder_recovery_reviews_ended_total{reason=closed} %v, want %d", got, len(closed))
	}
	if got := testutil.ToFloat64(e.metrics.reviews.WithLabelValues(testMP, ReviewEndedDeadline)); got != 1 {
		t.Errorf("bidder_recovery_reviews_ended_total{reason=deadline} %v, want 1", got)
	}
	if rec, err := e.ledger.Get(ctx, testMP, late); err != nil || rec.State != ledger.StateExpired || rec.Rule != "review_deadline" {
		t.Errorf("late %s: %+v, %v; want expired, review_deadline", late, rec, err)
	}
}

// flakyReader answers every posting with err, counting the requests.
type flakyReader struct {
	err   error
	asked int
}

func (f *flakyReader) Posting(context.Context, string) (marketplace.Posting, error) {
	f.asked++
	return marketplace.Posting{}, f.err
}

// TestReviewCheckNeverEndsAReviewOnDoubt: a marketplace that fails, rate
// limits or has no request slot left ends no review; the pass stops asking
// at the first such answer (the next pass asks again) and does not fail.
func TestReviewCheckNeverEndsAReviewOnDoubt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, id := range []string{"r-1", "r-2", "r-3"} {
		e.review(t, id, time.Now().Add(time.Hour))
	}
	for _, tc := range []struct {
		name      string
		err       error
		slot      bool
		wantAsked int
	}{
		{"transient", marketplace.NewError(marketplace.ErrTransient, "get_posting", "", errors.New("503")), true, 1},
		{"rate limited", marketplace.NewError(marketplace.ErrRateLimited, "get_posting", "", nil), true, 1},
		{"not found", marketplace.NewError(marketplace.ErrPermanent, "get_posting", "not_found", nil), true, 1},
		{"no request slot", nil, false, 0},
	} {
		f := &flakyReader{err: tc.err}
		r := &recoverer{rdb: e.rdb, client: asynq.NewClientFromRedisClient(e.rdb), insp: e.insp, ledger: e.ledger, every: time.Hour,
			retention: time.Hour, waits: rules.NewWaits(e.rdb, ""), metrics: e.metrics, log: zap.NewNop(),
			postings: map[string]marketplace.PostingReader{testMP: f},
			pace:     func(context.Context, string, time.Duration) (bool, error) { return tc.slot, nil }}
		rec, err := r.run(ctx, testMP)
		if err != nil || rec.Closed != 0 {
			t.Errorf("%s: pass %+v, %v; want nothing closed, no error", tc.name, rec, err)
		}
		if f.asked != tc.wantAsked {
			t.Errorf("%s: %d requests, want %d", tc.name, f.asked, tc.wantAsked)
		}
	}
	if left, err := e.ledger.Reviews(ctx, testMP, 0); err != nil || len(left) != 3 {
		t.Fatalf("in review: %+v, %v; want all 3", left, err)
	}
}
