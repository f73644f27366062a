package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/worker"
)

// ParkedInfo is one parked posting, for listing.
type ParkedInfo struct {
	Marketplace, Posting string
	Since                time.Time
	From                 ledger.State // an intent: a bid may exist; resume reconciles first
	Rule, Reason         string
}

// ListParked lists a marketplace's parked postings, oldest first.
func ListParked(ctx context.Context, led *ledger.Ledger, marketplaceID string, limit int) ([]ParkedInfo, error) {
	ps, err := led.Parked(ctx, marketplaceID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]ParkedInfo, 0, len(ps))
	for _, p := range ps {
		rec, err := led.Get(ctx, marketplaceID, p.PostingID)
		if err != nil {
			return nil, err
		}
		if rec.State != ledger.StateParked {
			continue // resumed since the index was read
		}
		out = append(out, ParkedInfo{Marketplace: marketplaceID, Posting: p.PostingID, Since: rec.ParkedAt,
			From: rec.ParkedFrom, Rule: rec.ParkRule, Reason: rec.ParkReason})
	}
	return out, nil
}

// Resumer brings parked postings back: the ledger restores what each held
// (an unresolved intent stays one, so the next attempt asks the marketplace
// before anything is sent: a resume can never make a second bid), and the
// posting's bid task is enqueued again from the payload the scanner stored.
type Resumer struct {
	Ledger *ledger.Ledger
	Client *asynq.Client
	Insp   *asynq.Inspector
	// PerMarketplace and Retention are the scanner's settings
	// (worker.queue_per_marketplace, the bid task retention).
	PerMarketplace bool
	Retention      time.Duration
}

// ErrNothingToResume: the posting is decided, or was never found by a scan.
var ErrNothingToResume = errors.New("nothing to resume")

// Resume resumes one posting. Resuming twice, from two terminals at once,
// or a posting another resume already brought back is harmless: the ledger
// changes once, and asynq keeps one task per posting.
func (r Resumer) Resume(ctx context.Context, marketplaceID, postingID string) error {
	payload, err := r.Ledger.Resume(ctx, marketplaceID, postingID)
	if errors.Is(err, ledger.ErrNotParked) {
		// Another resume may have come first; if the posting is still
		// undecided its task must exist, which enqueueing makes sure of.
		rec, gerr := r.Ledger.Get(ctx, marketplaceID, postingID)
		if gerr != nil {
			return gerr
		}
		if rec.State.Final() {
			return fmt.Errorf("%w: %s:%s is %s", ErrNothingToResume, marketplaceID, postingID, rec.State)
		}
		if payload, err = r.Ledger.Payload(ctx, marketplaceID, postingID); err != nil {
			return err
		}
		if payload == nil {
			return fmt.Errorf("%w: %s:%s has no task payload (no scan recorded it)", ErrNothingToResume, marketplaceID, postingID)
		}
	} else if err != nil {
		return err
	}
	return r.requeue(ctx, marketplaceID, postingID, payload)
}

// requeue enqueues a posting's bid task again from its stored payload,
// first removing the task that ended under the same ID; a task that still
// runs or waits needs nothing (it will claim the posting).
func (r Resumer) requeue(ctx context.Context, marketplaceID, postingID string, payload []byte) error {
	p, err := worker.DecodeBidPayload(payload)
	if err != nil {
		return fmt.Errorf("%s:%s: stored payload: %w", marketplaceID, postingID, err)
	}
	opts := []asynq.Option{asynq.Retention(r.Retention)}
	if r.PerMarketplace {
		opts = append(opts, asynq.Queue(worker.MarketplaceQueue(marketplaceID)))
	}
	t, err := worker.NewBidTask(p, opts...)
	if err != nil {
		return err
	}
	id := worker.BidTaskID(marketplaceID, postingID)
	for _, q := range []string{worker.QueueBids, worker.MarketplaceQueue(marketplaceID)} {
		ti, err := r.Insp.GetTaskInfo(q, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			continue
		case err != nil:
			return fmt.Errorf("%s:%s: look up its task: %w", marketplaceID, postingID, err)
		case ti.State != asynq.TaskStateCompleted && ti.State != asynq.TaskStateArchived:
			return nil
		}
		if err := r.Insp.DeleteTask(q, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return fmt.Errorf("%s:%s: remove its ended task: %w", marketplaceID, postingID, err)
		}
	}
	if _, err := r.Client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("%s:%s: enqueue: %w", marketplaceID, postingID, err)
	}
	return nil
}

// ResumeAll resumes every parked posting of a marketplace, or those parked
// for rule when it is not "", oldest first, calling each (if not nil) after
// each one. It stops at the first error, saying how many came back before.
func (r Resumer) ResumeAll(ctx context.Context, marketplaceID, rule string, each func(postingID string)) (int, error) {
	ps, err := ListParked(ctx, r.Ledger, marketplaceID, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range ps {
		if rule != "" && p.Rule != rule {
			continue
		}
		if err := r.Resume(ctx, marketplaceID, p.Posting); err != nil {
			return n, fmt.Errorf("%w (%d resumed before it)", err, n)
		}
		n++
		if each != nil {
			each(p.Posting)
		}
	}
	return n, nil
}

// NewResumer builds a Resumer on rdb.
func NewResumer(rdb redis.UniversalClient, led *ledger.Ledger, perMarketplace bool, retention time.Duration) Resumer {
	return Resumer{Ledger: led, Client: asynq.NewClientFromRedisClient(rdb), Insp: asynq.NewInspectorFromRedisClient(rdb),
		PerMarketplace: perMarketplace, Retention: retention}
}
