package ledger

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event kinds the ledger's scripts append to a posting's outbox (with
// WithNotifications), each in the script that makes its change.
const (
	EventReviewNeeded  = "review_needed"
	EventBidPlaced     = "bid_placed"
	EventPostingParked = "posting_parked"
)

// OutboxCap is how many events one outbox keeps: a notifier gone for long
// loses the oldest, and Redis memory stays bounded.
const OutboxCap = 100000

// Event is one outbox entry. ID names the (event, posting) pair: a
// notifier delivers each ID to each channel at most once, so an event the
// scripts could write twice (they do not: each is written by the change it
// reports, which happens once) would still reach a channel once.
type Event struct {
	ID          string `json:"id"`
	Kind        string `json:"event"`
	Marketplace string `json:"marketplace"`
	PostingID   string `json:"posting"`
	AtMs        int64  `json:"at"`

	BidID    string `json:"bid_id,omitempty"`   // bid_placed
	Amount   string `json:"amount,omitempty"`   // bid_placed, review_needed
	Currency string `json:"currency,omitempty"` // bid_placed, review_needed
	UntilMs  int64  `json:"until,omitempty"`    // review_needed: the deadline
	Rule     string `json:"rule,omitempty"`     // posting_parked
	Reason   string `json:"reason,omitempty"`   // review_needed, posting_parked
	// HeldIntent: the parked posting had an unresolved intent (a bid may
	// exist on the marketplace).
	HeldIntent bool `json:"held_intent,omitempty"`
}

// At is when the change happened (Redis time).
func (e Event) At() time.Time { return time.UnixMilli(e.AtMs) }

// ParseEvent decodes an outbox entry. An entry without an id or kind is
// ErrCorrupt: a notifier counts and drops it rather than send nonsense.
func ParseEvent(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("%w: outbox entry: %v", ErrCorrupt, err)
	}
	if e.ID == "" || e.Kind == "" || e.Marketplace == "" || e.PostingID == "" {
		return Event{}, fmt.Errorf("%w: outbox entry without id, event, marketplace or posting", ErrCorrupt)
	}
	return e, nil
}
