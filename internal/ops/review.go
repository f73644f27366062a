package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// ReviewItem is one posting in a review queue, with what was proposed.
type ReviewItem struct {
	Marketplace, Posting string
	Title, URL           string
	Until                time.Time
	Amount               float64
	Currency             string
	Proposal             string
	Reason               string // why it is in review
	Audit                []ledger.AuditEntry
}

// Reviewer approves and rejects postings in review. Approving twice, from
// two instances at once, or after a reject gives one outcome (the ledger's
// review script); an approval then enqueues the posting's bid task, which
// goes out under every guarantee of the pipeline (claim, fence, send
// window, reconciliation).
type Reviewer struct {
	Resumer
	// Rules check a reviewer's edited bid against the bounds the rules'
	// own bids keep, per marketplace.
	Rules map[string]*rules.Engine
}

// ErrBadEdit: an edited amount or proposal is outside the rules' bounds.
var ErrBadEdit = errors.New("edited bid refused")

// Queue lists a marketplace's postings in review, nearest deadline first.
func (r Reviewer) Queue(ctx context.Context, marketplaceID string, limit int) ([]ReviewItem, error) {
	q, err := r.Ledger.Reviews(ctx, marketplaceID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]ReviewItem, 0, len(q))
	for _, e := range q {
		it, err := r.Show(ctx, marketplaceID, e.PostingID)
		if err != nil {
			return nil, err
		}
		if it.Until.IsZero() {
			continue // decided since the index was read
		}
		out = append(out, it)
	}
	return out, nil
}

// Show returns one posting's review: what was proposed, why, until when,
// and its log. Until is zero when it is not in review.
func (r Reviewer) Show(ctx context.Context, marketplaceID, postingID string) (ReviewItem, error) {
	rec, err := r.Ledger.Get(ctx, marketplaceID, postingID)
	if err != nil {
		return ReviewItem{}, err
	}
	it := ReviewItem{Marketplace: marketplaceID, Posting: postingID, Amount: rec.Amount, Currency: rec.Currency,
		Proposal: rec.Proposal, Reason: rec.Reason}
	if rec.State == ledger.StateReview {
		it.Until = rec.ReviewUntil
	}
	if p, err := r.posting(ctx, marketplaceID, postingID); err == nil {
		it.Title, it.URL = p.title, p.url
	}
	if it.Audit, err = r.Ledger.Audit(ctx, marketplaceID, postingID); err != nil {
		return ReviewItem{}, err
	}
	return it, nil
}

type postingInfo struct{ title, url string }

func (r Reviewer) posting(ctx context.Context, mp, id string) (postingInfo, error) {
	b, err := r.Ledger.Payload(ctx, mp, id)
	if err != nil || b == nil {
		return postingInfo{}, fmt.Errorf("no payload")
	}
	p, err := worker.DecodeBidPayload(b)
	if err != nil {
		return postingInfo{}, err
	}
	return postingInfo{p.Title, p.URL}, nil
}

// Approve approves a posting's proposed bid, or the bid as edited (amount
// 0 and proposal "" keep what was proposed), and enqueues its bid task.
// already is true when it was approved before (by anyone): the task is
// made sure of all the same.
func (r Reviewer) Approve(ctx context.Context, marketplaceID, postingID, by string, amount float64, proposal string) (already bool, err error) {
	payload, err := r.Ledger.Payload(ctx, marketplaceID, postingID)
	if err != nil {
		return false, err
	}
	// No payload: the posting is decided (or was never discovered). The
	// review script tells which: an approval that placed its bid is
	// "already approved", not an error.
	if payload == nil {
		if rec, err := r.Ledger.Get(ctx, marketplaceID, postingID); err != nil {
			return false, err
		} else if rec.State == ledger.StateReview {
			// In review but nothing to send it with: refuse before the
			// approval changes anything.
			return false, fmt.Errorf("%w: %s:%s has no task payload", ledger.ErrNotInReview, marketplaceID, postingID)
		}
	}
	if payload != nil && (amount != 0 || proposal != "") {
		if err := r.checkEdit(ctx, marketplaceID, postingID, payload, amount, proposal); err != nil {
			return false, err
		}
	}
	res, err := r.Ledger.Review(ctx, marketplaceID, postingID, ledger.Review{Action: ledger.Approve, By: by, Amount: amount, Proposal: proposal})
	if err != nil {
		return false, err
	}
	if (res.Already && res.State != ledger.StateApproved) || payload == nil {
		return true, nil // approved, and the bid is on its way or out
	}
	return res.Already, r.requeue(ctx, marketplaceID, postingID, payload)
}

func (r Reviewer) checkEdit(ctx context.Context, mp, id string, payload []byte, amount float64, proposal string) error {
	eng := r.Rules[mp]
	if eng == nil {
		return fmt.Errorf("%w: no rules for marketplace %q to check it against", ErrBadEdit, mp)
	}
	p, err := worker.DecodeBidPayload(payload)
	if err != nil {
		return err
	}
	rec, err := r.Ledger.Get(ctx, mp, id)
	if err != nil {
		return err
	}
	if amount == 0 {
		amount = rec.Amount
	}
	if proposal == "" {
		proposal = rec.Proposal
	}
	if err := eng.CheckBid(p, amount, proposal); err != nil {
		return fmt.Errorf("%w: %w", ErrBadEdit, err)
	}
	return nil
}

// Reject rejects a posting in review, for good, with a reason.
func (r Reviewer) Reject(ctx context.Context, marketplaceID, postingID, by, why string) (already bool, err error) {
	res, err := r.Ledger.Review(ctx, marketplaceID, postingID, ledger.Review{Action: ledger.Reject, By: by, Why: why})
	return res.Already, err
}
