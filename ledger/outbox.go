package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event kinds the ledger's scripts append to a posting's outbox (with
// WithNotifications), each in the script that makes its change.
const (
	EventReviewNeeded  = "review_needed"
	EventBidPlaced     = "bid_placed"
	EventPostingParked = "posting_parked"
	// EventBudgetSpent: a marketplace's bid budget window is spent (no
	// posting: once per marketplace per window; UntilMs is when bidding
	// resumes). Written by NotifyBudgetSpent, not by a record's change.
	EventBudgetSpent = "budget_spent"
	// EventMarketplaceUnauthorized: the marketplace refuses the account's
	// token (no posting: once per marketplace per UTC hour while it lasts;
	// Reason is the refusal). Written by NotifyUnauthorized.
	EventMarketplaceUnauthorized = "marketplace_unauthorized"
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
	UntilMs  int64  `json:"until,omitempty"`    // review_needed: the deadline; budget_spent: when bidding resumes
	Rule     string `json:"rule,omitempty"`     // posting_parked
	Reason   string `json:"reason,omitempty"`   // review_needed, posting_parked, marketplace_unauthorized
	// HeldIntent: the parked posting had an unresolved intent (a bid may
	// exist on the marketplace).
	HeldIntent bool `json:"held_intent,omitempty"`
	// Instance names the process of an event no ledger script writes
	// (notify's redis_unreachable: Redis is where the outbox would be).
	Instance string `json:"instance,omitempty"`
}

// ProcessLevel reports an event about a marketplace, not a posting (its
// PostingID is empty).
func (e Event) ProcessLevel() bool {
	return e.Kind == EventBudgetSpent || e.Kind == EventMarketplaceUnauthorized
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
	if e.ID == "" || e.Kind == "" || e.Marketplace == "" || (e.PostingID == "" && !e.ProcessLevel()) {
		return Event{}, fmt.Errorf("%w: outbox entry without id, event, marketplace or posting", ErrCorrupt)
	}
	return e, nil
}

// NotifyBudgetSpent appends a budget_spent event for marketplaceID's bid
// budget, spent until until (when its next window opens), once per window:
// a marker in Redis, in the outbox's slot, makes every later call for the
// same window a no-op, on any instance. Nothing without WithNotifications.
func (l *Ledger) NotifyBudgetSpent(ctx context.Context, marketplaceID string, until time.Time) error {
	// Kept past the window's end so a late call (a clock a little behind)
	// still finds it.
	ttl := max(time.Until(until)+time.Hour, time.Minute)
	return l.notifyOnce(ctx, EventBudgetSpent, marketplaceID, strconv.FormatInt(until.Unix(), 10), ttl, until.UnixMilli(), "")
}

// NotifyUnauthorized appends a marketplace_unauthorized event: the
// marketplace refused the account's token (reason: its answer, which the
// adapters keep free of the token). Once per marketplace per UTC hour of
// now, on any instance: a token that stays refused is said again each
// hour, not on every posting. Nothing without WithNotifications.
func (l *Ledger) NotifyUnauthorized(ctx context.Context, marketplaceID string, now time.Time, reason string) error {
	hour := now.Unix() / 3600 * 3600
	if len(reason) > 300 {
		reason = strings.ToValidUTF8(reason[:300], "")
	}
	return l.notifyOnce(ctx, EventMarketplaceUnauthorized, marketplaceID, strconv.FormatInt(hour, 10), 2*time.Hour, 0, reason)
}

// notifyOnce writes a process-level event once per (kind, marketplace,
// window) with a marker in the outbox's slot.
func (l *Ledger) notifyOnce(ctx context.Context, kind, marketplaceID, window string, ttl time.Duration, untilMs int64, reason string) error {
	if !l.notify {
		return nil
	}
	outbox := l.OutboxKey(marketplaceID, "")
	marker := l.prefix + "_" + kind + ":" + marketplaceID + l.locks.Shard(marketplaceID, "") + ":" + window
	// Without WAIT: a notification lost in a failover is not worth a
	// round trip on every waiting task.
	if err := l.sc.once.Run(ctx, l.rdb, []string{outbox, marker}, marketplaceID, untilMs, ms(ttl), window, kind, reason).Err(); err != nil {
		return fmt.Errorf("ledger: %s event for %s: %w", kind, marketplaceID, err)
	}
	return nil
}
