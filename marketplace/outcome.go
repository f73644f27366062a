package marketplace

import (
	"context"
	"errors"
	"time"
)

// Outcome is where a placed bid stands on its marketplace: what came back
// after the bid.
type Outcome string

const (
	// OutcomePending: the marketplace has decided nothing about the bid yet
	// (or reports no decision it could be mapped from).
	OutcomePending Outcome = "pending"
	// OutcomeAwarded: the client chose this bid (hired, won).
	OutcomeAwarded Outcome = "awarded"
	// OutcomeRejected: the client decided against this bid, or took an
	// award back.
	OutcomeRejected Outcome = "rejected"
	// OutcomeRetracted: the bid was withdrawn by its bidder.
	OutcomeRetracted Outcome = "retracted"
	// OutcomeUnknown: the marketplace did not say. Either the bid was not
	// in its answer (BidStatus.Text is then empty) or its status is one the
	// adapter cannot map (Text has it).
	OutcomeUnknown Outcome = "unknown"
)

// Decided reports whether the outcome is one a bid normally ends in. A
// marketplace may still move a decided bid (Freelancer: an accepted award
// can be cancelled), so a tracker that stops polling at the first decided
// outcome accepts missing such a late change.
func (o Outcome) Decided() bool {
	return o == OutcomeAwarded || o == OutcomeRejected || o == OutcomeRetracted
}

// Valid reports whether o is one of the outcomes above.
func (o Outcome) Valid() bool {
	switch o {
	case OutcomePending, OutcomeAwarded, OutcomeRejected, OutcomeRetracted, OutcomeUnknown:
		return true
	}
	return false
}

// BidStatus is what a marketplace says about one placed bid.
type BidStatus struct {
	BidID     string  // PlacedBid.ID of the bid asked about
	PostingID string  // the posting it is on, as asked
	Outcome   Outcome // never ""
	// ChangedAt is when the marketplace says the bid took this outcome;
	// zero when it did not say.
	ChangedAt time.Time
	// Text is the marketplace's own status words ("award_status=revoked"),
	// made safe to print (internal/textsafe.Line) and capped: for logs, the
	// ledger's history and the status page, never for decisions.
	Text string
}

// StatusReader is an optional Adapter capability: reading the status of
// placed bids, many per request. A marketplace without it simply never
// reports outcomes.
type StatusReader interface {
	// MaxStatusBatch is how many bids one BidStatuses call may carry (at
	// least 1); callers split larger sets into batches of at most this.
	MaxStatusBatch() int
	// BidStatuses returns one BidStatus per bid, in the order of bids.
	// Each bid needs ID (as PlaceBid or FindBid returned it) and PostingID.
	// A bid the marketplace does not report is OutcomeUnknown, not an
	// error. More bids than MaxStatusBatch, an empty or repeated ID, is an
	// ErrPermanent error before any request. BidStatuses only reads: every
	// failure is safe to retry after the error's class says so.
	BidStatuses(ctx context.Context, bids []PlacedBid) ([]BidStatus, error)
}

// Error classes of RetractBid, besides the usual ones. Like the classes in
// errors.go they are the Class of an *Error, so errors.Is works.
var (
	// ErrBidNotFound: the marketplace knows no such bid of this account.
	ErrBidNotFound = errors.New("bid not found")
	// ErrRetractTooLate: the bid can no longer be withdrawn (it was
	// awarded, rejected, or the marketplace refuses for its own reasons
	// that mean "decided"). Reason and the cause say which.
	ErrRetractTooLate = errors.New("bid can no longer be retracted")
)

// Retracter is an optional Adapter capability: withdrawing a placed bid.
type Retracter interface {
	// RetractBid withdraws bid (ID as PlaceBid or FindBid returned it) from
	// the posting. It sends one state-changing request; retracting a bid
	// that is already retracted is success, so a caller may simply call
	// again after an ErrAmbiguous (the request may have taken effect), an
	// ErrTransient or an ErrRateLimited. Refusals are ErrBidNotFound,
	// ErrRetractTooLate or ErrPermanent.
	RetractBid(ctx context.Context, postingID string, bid PlacedBid) error
}
