package ledger

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Outcome is what became of a claimed posting, for Settle to record.
type Outcome struct {
	// State is final (StatePlaced, StateFailed; or StateSkipped and
	// StateDryRun when reconciliation found no bid for an earlier intent
	// and the decision was not to bid); StateNone (nothing was placed: the
	// posting is undecided again and may be claimed anew); or StateIntent
	// (reconciliation found no bid for an earlier intent: take it over and
	// bid now, under the same lock).
	State    State
	BidID    string  // placed
	Amount   float64 // placed, dry run
	Currency string  // placed, dry run
	Rule     string  // failed: the error class; skipped: the rule
	Reason   string  // failed, skipped
	Proposal string  // dry run: the text that would have been sent
	Dims     string  // placed: what reports group the bid by (rules.Dims.Encode)
	// Replaces is the holder of the earlier attempt's intent this outcome
	// resolves (after a Pending claim); "" for the caller's own intent.
	Replaces string
	// Release deletes the lock in the same script; the caller then calls
	// Lock.MarkReleased.
	Release bool
	// Settle is the intent's settle window (StateIntent only; see Decision).
	Settle time.Duration
	// Account (StateIntent) is the account that bids now, as Decision's.
	// A placed outcome keeps the intent's.
	Account string
	// ResultKey and Result: as Decision's, for a final outcome.
	ResultKey string
	Result    []byte
}

// Settle records o under f's lock, and releases it if asked, in one script
// and one round trip. It fails with ErrStale when f no longer holds the
// lock or a newer acquisition exists, ErrDecided over a final record, and
// ErrPending over another attempt's intent that o does not say it replaces.
func (l *Ledger) Settle(ctx context.Context, f Fence, marketplaceID, postingID string, o Outcome) error {
	key := l.Key(marketplaceID, postingID)
	var fields []any
	switch o.State {
	case StatePlaced:
		fields = []any{"b", o.BidID, "amt", strconv.FormatFloat(o.Amount, 'f', -1, 64), "cur", o.Currency, "dim", o.Dims}
	case StateDryRun:
		fields = []any{"amt", strconv.FormatFloat(o.Amount, 'f', -1, 64), "cur", o.Currency, "txt", o.Proposal}
	case StateFailed, StateSkipped:
		fields = []any{"rule", o.Rule, "why", o.Reason}
	case StateIntent:
		if o.Account != "" {
			fields = []any{"ac", o.Account}
		}
	case StateNone:
	default:
		return fmt.Errorf("ledger: settle %s: cannot settle as %q", key, o.State)
	}
	release := "0"
	if o.Release {
		release = "1"
	}
	keys := []string{f.Key(), key, l.OpenKey(marketplaceID, postingID), l.PayloadKey(marketplaceID, postingID),
		l.OutboxKey(marketplaceID, postingID), l.PlacedKey(marketplaceID, postingID), l.BidsKey(marketplaceID, postingID)}
	if o.ResultKey != "" {
		keys = append(keys, o.ResultKey)
	}
	args := append([]any{f.Holder(), f.Token(), string(o.State), o.Replaces, release,
		ms(l.retention), postingID, ms(o.Settle), o.Result, l.notifyArg(marketplaceID), l.trackArg(marketplaceID)}, fields...)
	res, replErr, err := l.run(ctx, l.sc.settle, keys, args...)
	if err != nil {
		l.count("error")
		return fmt.Errorf("ledger: settle %s as %q: %w", key, o.State, err)
	}
	switch res.str(0) {
	case "ok":
		if replErr != nil {
			l.count("unreplicated")
			if o.State == StateIntent {
				return replErr
			}
			return nil
		}
		l.count("ok")
		return nil
	case "stale":
		l.count("stale")
		return fmt.Errorf("%w: %s: token %d (%s)", ErrStale, key, f.Token(), res.str(1))
	case "decided":
		l.count("decided")
		return fmt.Errorf("%w: %s is %s", ErrDecided, key, res.str(1))
	case "pending":
		if p, err := pendingAt(key, res, 1); err == nil {
			l.count("pending")
			return p
		}
	}
	l.count("error")
	return fmt.Errorf("%w: reply %v to settle of %s", ErrCorrupt, []any(res), key)
}
