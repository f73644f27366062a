package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/marketplace"
)

// Retracter withdraws placed bids: the marketplace first, then the ledger
// records the outcome. The posting stays placed (final), so the pipeline
// never bids on it again. A crash between the two leaves a retracted bid
// whose ledger outcome still says pending: running the retract again
// succeeds (the marketplace treats a second retract as done) and the
// tracker, which reads the marketplace, records it anyway.
type Retracter struct {
	Ledger   *ledger.Ledger
	Adapters map[string]marketplace.Adapter
	// Accounts are the adapters of agency-mode marketplaces' accounts (by
	// marketplace ID): a bid is retracted by the account that placed it.
	Accounts map[string][]marketplace.Adapter
	// Attempts bounds the tries on a transient, ambiguous or rate-limited
	// answer (default 4), Backoff the first wait between them (default 1s,
	// doubled each time).
	Attempts int
	Backoff  time.Duration
}

// Errors of Retract, beside the ledger's ErrNotPlaced and the marketplace's
// ErrBidNotFound and ErrRetractTooLate.
var (
	ErrCannotRetract = errors.New("the marketplace's adapter cannot retract bids")
	ErrUnknownMarket = errors.New("marketplace not in the config")
	// ErrUnknownAccount: the bid's account (agency mode) is not in the
	// config; only that account can withdraw it.
	ErrUnknownAccount = errors.New("account not in the config")
)

// Retracted is what Retract did.
type Retracted struct {
	BidID   string
	Already bool // the ledger had it retracted: nothing was sent
}

// Retract withdraws the posting's placed bid, as `by` for the reason why.
func (r Retracter) Retract(ctx context.Context, marketplaceID, postingID, by, why string) (Retracted, error) {
	ad, ok := r.Adapters[marketplaceID]
	if !ok {
		return Retracted{}, fmt.Errorf("%w: %q", ErrUnknownMarket, marketplaceID)
	}
	rec, err := r.Ledger.Get(ctx, marketplaceID, postingID)
	if err != nil {
		return Retracted{}, err
	}
	if rec.Account != "" {
		if ad, ok = r.account(marketplaceID, rec.Account); !ok {
			return Retracted{}, fmt.Errorf("%w: %s:%s was bid on by account %q", ErrUnknownAccount, marketplaceID, postingID, rec.Account)
		}
	}
	rt, ok := ad.(marketplace.Retracter)
	if !ok {
		return Retracted{}, fmt.Errorf("%s: %w", marketplaceID, ErrCannotRetract)
	}
	if rec.State != ledger.StatePlaced || rec.BidID == "" {
		st := string(rec.State)
		if st == "" {
			st = "undecided"
		}
		return Retracted{}, fmt.Errorf("%w: %s:%s is %s", ledger.ErrNotPlaced, marketplaceID, postingID, st)
	}
	out := Retracted{BidID: rec.BidID}
	if rec.Outcome == ledger.BidRetracted {
		out.Already = true
		return out, nil
	}
	if err := r.send(ctx, rt, postingID, rec.BidID); err != nil {
		return out, fmt.Errorf("retract bid %s on %s:%s: %w", rec.BidID, marketplaceID, postingID, err)
	}
	_, err = r.Ledger.RecordOutcome(ctx, marketplaceID, ledger.Observed{
		PostingID: postingID, BidID: rec.BidID, Outcome: ledger.BidRetracted, By: by, Text: why})
	if err != nil {
		return out, fmt.Errorf("bid %s is retracted on the marketplace, but the ledger did not record it (run the retract again; the tracker records it too): %w", rec.BidID, err)
	}
	return out, nil
}

func (r Retracter) account(marketplaceID, name string) (marketplace.Adapter, bool) {
	for _, a := range r.Accounts[marketplaceID] {
		if a.Account() == name {
			return a, true
		}
	}
	return nil, false
}

// send retracts on the marketplace, trying again while the answer says it
// may not have happened: a retract is safe to repeat.
func (r Retracter) send(ctx context.Context, rt marketplace.Retracter, postingID, bidID string) error {
	attempts, wait := r.Attempts, r.Backoff
	if attempts <= 0 {
		attempts = 4
	}
	if wait <= 0 {
		wait = time.Second
	}
	var err error
	for i := 0; i < attempts; i++ {
		err = rt.RetractBid(ctx, postingID, marketplace.PlacedBid{ID: bidID, PostingID: postingID})
		if err == nil {
			return nil
		}
		if !errors.Is(err, marketplace.ErrTransient) && !errors.Is(err, marketplace.ErrAmbiguous) && !errors.Is(err, marketplace.ErrRateLimited) {
			return err
		}
		d := wait << i
		if ra, ok := marketplace.RetryAfter(err); ok {
			d = max(d, ra)
		}
		if i == attempts-1 {
			break
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last answer: %w)", context.Cause(ctx), err)
		case <-t.C:
		}
	}
	return err
}
