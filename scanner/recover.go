package scanner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// Recovery defaults.
const (
	// DefaultRecoverEvery is how often, across all instances, a
	// marketplace's recovery pass runs.
	DefaultRecoverEvery = time.Minute
	// recoverBatch bounds one pass: what it cannot take now is due next time.
	recoverBatch = 2000
	// DefaultRecoverKeyPrefix names the marker that lets one instance per
	// interval run a marketplace's pass.
	DefaultRecoverKeyPrefix = "bid_recover"
	// reviewChecks bounds how many postings in review one pass asks the
	// marketplace about (nearest deadline first), and reviewCheckWait how
	// long it waits for each request's slot of the marketplace's rate.
	reviewChecks    = 50
	reviewCheckWait = time.Second
)

// Recovered is what one recovery pass did.
type Recovered struct {
	Expired   int // postings in review whose deadline passed
	Closed    int // postings in review the marketplace closed
	Due       int // undecided postings whose check was due
	Missing   int // of those, whose bid task no longer existed
	Enqueued  int // enqueued again
	Forgotten int // whose record was gone (expired): dropped from the index
}

// recoverer is the recovery pass: a posting the scanner found stays listed
// in the ledger's open index until it is decided; one whose bid task is
// gone (a Redis failover that lost the last enqueues while the cursor
// survived, maxmemory eviction, a task deleted in the web UI) would
// otherwise wait for ever. The pass takes the postings whose check is due,
// asks asynq whether their task still exists, and enqueues the missing
// ones again from the payload the scanner stored. It is cheap when nothing
// is lost (one small read per marketplace, or per Cluster slot, per pass)
// and safe when every instance runs it: a marker lets one instance per
// interval do it, Due hands each posting to one pass, and an enqueue that
// races a task's return is refused by asynq's task ID.
type recoverer struct {
	rdb       redis.UniversalClient
	client    enqueuer
	insp      *asynq.Inspector
	ledger    *ledger.Ledger
	every     time.Duration
	retention time.Duration
	perMarket bool
	waits     *rules.Waits
	metrics   *Metrics
	log       *zap.Logger
	// postings and pace, when set, let the pass ask a marketplace whose
	// adapter is a marketplace.PostingReader whether the postings in
	// review are still open, at the scan's shared request rate.
	postings map[string]marketplace.PostingReader
	pace     func(ctx context.Context, marketplaceID string, maxWait time.Duration) (ok bool, err error)
}

// maybeRun runs marketplaceID's pass if no instance ran one within the
// interval; ran is false when another did.
func (r *recoverer) maybeRun(ctx context.Context, marketplaceID string) (rec Recovered, ran bool, err error) {
	ok, err := r.rdb.SetNX(ctx, DefaultRecoverKeyPrefix+":"+marketplaceID, "1", r.every).Result()
	if err != nil || !ok {
		return rec, false, err
	}
	rec, err = r.run(ctx, marketplaceID)
	result := "ok"
	if err != nil {
		result = "error"
	}
	r.metrics.recoveries.WithLabelValues(marketplaceID, result).Inc()
	return rec, true, err
}

func (r *recoverer) run(ctx context.Context, mp string) (Recovered, error) {
	var rec Recovered
	var err error
	if rec.Expired, err = r.expireReviews(ctx, mp); err != nil {
		return rec, err
	}
	if err := r.requeueLost(ctx, mp, &rec); err != nil {
		return rec, err
	}
	// Last: it waits for the marketplace, which must never hold up the
	// lost tasks above.
	rec.Closed, err = r.closeReviews(ctx, mp)
	return rec, err
}

// requeueLost enqueues again the undecided postings whose check is due and
// whose bid task is gone.
func (r *recoverer) requeueLost(ctx context.Context, mp string, rec *Recovered) error {
	due, err := r.ledger.Due(ctx, mp, recoverBatch)
	if err != nil || len(due) == 0 {
		return err
	}
	rec.Due = len(due)
	exists, err := r.tasksExist(ctx, mp, due)
	if err != nil {
		return err
	}
	var missing []string
	for i, id := range due {
		if !exists[i] {
			missing = append(missing, id)
		}
	}
	rec.Missing = len(missing)
	for _, id := range missing {
		payload, err := r.ledger.Payload(ctx, mp, id)
		if err != nil {
			return err
		}
		if payload == nil {
			// Decided meanwhile (a final write drops the payload and the
			// index entry together), or expired.
			if forgot, err := r.forgetIfGone(ctx, mp, id); err != nil {
				return err
			} else if forgot {
				rec.Forgotten++
			}
			continue
		}
		p, err := worker.DecodeBidPayload(payload)
		if err != nil {
			r.log.Error("stored payload of an undecided posting is unreadable; it stays listed", zap.String("marketplace", mp),
				zap.String("posting", id), zap.Error(err))
			continue
		}
		opts := []asynq.Option{asynq.Retention(r.retention)}
		if r.perMarket {
			opts = append(opts, asynq.Queue(worker.MarketplaceQueue(mp)))
		}
		t, err := worker.NewBidTask(p, opts...)
		if err != nil {
			return err
		}
		// A task of the posting that ended (completed: it never runs again)
		// is kept under the same ID for its retention and would refuse the
		// new one.
		for _, q := range []string{worker.QueueBids, worker.MarketplaceQueue(mp)} {
			if err := r.insp.DeleteTask(q, worker.BidTaskID(mp, id)); err != nil &&
				!errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
				r.log.Debug("could not remove the ended task", zap.String("posting", id), zap.Error(err))
			}
		}
		switch _, err := r.client.EnqueueContext(ctx, t); {
		case err == nil:
			rec.Enqueued++
			r.metrics.recovered.WithLabelValues(mp).Inc()
			r.log.Warn("posting had no bid task; enqueued again", zap.String("marketplace", mp), zap.String("posting", id))
		case errors.Is(err, asynq.ErrTaskIDConflict):
			// It came back meanwhile: nothing to do.
		default:
			return fmt.Errorf("scanner: recover %s:%s: %w", mp, id, err)
		}
	}
	return nil
}

// expireReviews ends the reviews whose deadline passed: a posting nobody
// approved in time is not bid on (expired, final). A reviewer's approval
// racing it gives one outcome either way (the ledger's review script).
func (r *recoverer) expireReviews(ctx context.Context, mp string) (int, error) {
	due, err := r.ledger.DueReviews(ctx, mp, time.Now(), recoverBatch)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, q := range due {
		ended, err := r.endReview(ctx, mp, q.PostingID, ledger.Review{Action: ledger.Expire, By: "deadline", Why: "not reviewed before its deadline"})
		if err != nil {
			return n, err
		}
		if ended {
			n++
		}
	}
	r.metrics.reviews.WithLabelValues(mp, ReviewEndedDeadline).Add(float64(n))
	if n > 0 {
		r.log.Info("reviews expired", zap.String("marketplace", mp), zap.Int("postings", n))
	}
	return n, nil
}

// closeReviews ends the reviews of postings the marketplace has closed
// (expired, rule posting_closed): an approval could only send a bid the
// marketplace refuses. Only an answer that says closed ends a review; a
// failed request, a rate limit or a posting it cannot read leaves the rest
// for the next pass, and is logged, never the pass's error. A reviewer's
// action racing it gives one outcome (the ledger's review script).
func (r *recoverer) closeReviews(ctx context.Context, mp string) (int, error) {
	pr := r.postings[mp]
	if pr == nil {
		return 0, nil
	}
	queued, err := r.ledger.Reviews(ctx, mp, reviewChecks)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, q := range queued {
		if r.pace != nil {
			ok, err := r.pace(ctx, mp, reviewCheckWait)
			if err != nil {
				return n, err
			}
			if !ok {
				break // the scan's rate is spent: the next pass goes on
			}
		}
		p, err := pr.Posting(ctx, q.PostingID)
		if err != nil && !errors.Is(err, marketplace.ErrPostingClosed) {
			r.log.Info("cannot read a posting in review; asking again next pass",
				zap.String("marketplace", mp), zap.String("posting", q.PostingID), zap.Error(err))
			break
		}
		if err == nil && p.Status != marketplace.StatusClosed {
			continue
		}
		ended, err := r.endReview(ctx, mp, q.PostingID, ledger.Review{Action: ledger.Close, By: "marketplace", Why: "the posting closed before it was reviewed"})
		if err != nil {
			return n, err
		}
		if ended {
			n++
		}
	}
	r.metrics.reviews.WithLabelValues(mp, ReviewEndedClosed).Add(float64(n))
	if n > 0 {
		r.log.Info("reviews of closed postings ended", zap.String("marketplace", mp), zap.Int("postings", n))
	}
	return n, nil
}

// endReview applies an expiry or close; ended is false when a reviewer (or
// another pass) decided the posting first.
func (r *recoverer) endReview(ctx context.Context, mp, id string, rv ledger.Review) (ended bool, err error) {
	_, err = r.ledger.Review(ctx, mp, id, rv)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ledger.ErrNotInReview):
		return false, nil
	}
	return false, err
}

// tasksExist asks, in one round trip, whether each posting has a task that
// will still run: its bid task in either queue it can be in, in a state
// other than completed or archived (a completed task never runs again), or
// a continuation scheduled for its bid-budget window. It reads asynq's task
// hashes (worker.TaskKey; a test pins the layout).
func (r *recoverer) tasksExist(ctx context.Context, mp string, ids []string) ([]bool, error) {
	queues := []string{worker.QueueBids, worker.MarketplaceQueue(mp)}
	cmds := make([]*redis.StringCmd, len(ids)*len(queues))
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			for j, q := range queues {
				cmds[i*len(queues)+j] = p.HGet(ctx, worker.TaskKey(q, worker.BidTaskID(mp, id)), "state")
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("scanner: recovery: look up %d tasks of %s: %w", len(ids), mp, err)
	}
	out, err := r.waits.Waiting(ctx, mp, ids, time.Now())
	if err != nil {
		return nil, fmt.Errorf("scanner: recovery: %w", err)
	}
	for i := range ids {
		for j := range queues {
			if st := cmds[i*len(queues)+j].Val(); st != "" && st != "completed" && st != "archived" {
				out[i] = true
			}
		}
	}
	return out, nil
}

// forgetIfGone drops a posting from the open index when its record no
// longer exists (it expired: ledger.retention passed undecided).
func (r *recoverer) forgetIfGone(ctx context.Context, mp, id string) (bool, error) {
	rec, err := r.ledger.Get(ctx, mp, id)
	if err != nil {
		return false, err
	}
	if rec.State != ledger.StateNone || !rec.Discovered.IsZero() || !rec.At.IsZero() {
		return false, nil // it has a record (decided, parked, or in progress)
	}
	if err := r.ledger.Forget(ctx, mp, id); err != nil {
		return false, err
	}
	r.log.Warn("undecided posting's record expired before it was decided; dropped from the open index",
		zap.String("marketplace", mp), zap.String("posting", id))
	return true, nil
}
