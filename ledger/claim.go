package ledger

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Attempt is a lock acquisition a claim makes (a *lock.Attempt satisfies
// it): the claim script takes Key with Holder for TTL, and its token from
// FenceKey, exactly as the lock's own acquire script does.
type Attempt interface {
	Key() string
	FenceKey() string
	Holder() string
	TTL() time.Duration
}

// Decision is what the rules decided, for Claim to record.
type Decision struct {
	// State is StateIntent (bid: the lock stays held for the bid),
	// StateSkipped or StateDryRun (final at once), or StateReview (a human
	// must approve the bid first: Amount, Currency, Proposal, Rule and
	// Reason say what and why, ReviewUntil until when).
	State    State
	Rule     string  // skipped
	Reason   string  // skipped
	Amount   float64 // dry run
	Currency string  // dry run
	Proposal string  // dry run: the text that would have been sent; review: proposed
	// ReviewUntil is a review's deadline (by Redis' clock, as the caller
	// computes it from its own: a second of skew does not matter here).
	ReviewUntil time.Time
	// ResultKey, if set, is a hash whose "result" field the script sets to
	// Result with a final decision: the asynq task's own, so the task
	// records its decision without a round trip of its own. It must be in
	// the posting's slot (a standalone or Sentinel Redis; on Cluster it is
	// not: leave it empty).
	ResultKey string
	Result    []byte
	// Settle is how long after the intent none of its requests can still be
	// in flight: the longest the caller will take to send the bid after the
	// claim, plus the marketplace's request timeout and processing. It is
	// stored with the intent, so whoever finds it later waits that long.
	Settle time.Duration
	// Account is the account that will bid, where the marketplace has
	// several (agency mode): stored with an intent (also one a reviewer's
	// approval turns the decision into), so whoever finds it later asks
	// that account whether the bid arrived. "" for a marketplace with one.
	Account string
}

// ClaimOutcome says what a claim did.
type ClaimOutcome int

const (
	// Claimed: the lock is held and the intent recorded: send the bid, then
	// Settle.
	Claimed ClaimOutcome = iota + 1
	// Recorded: the final decision (skipped, dry run) is recorded; no lock
	// is held.
	Recorded
	// Pending: an earlier attempt's intent has settled and the lock is held:
	// ask the marketplace whether that bid exists, then Settle (placed, or
	// StateIntent to bid now). Earlier describes it.
	Pending
	// Settling: an earlier attempt's request may still be in flight; wait
	// RetryIn. Nothing is held.
	Settling
	// Decided: the posting was already final (State); nothing is held.
	Decided
	// Busy: another worker holds the lock for RetryIn more; nothing is held.
	Busy
	// Parked: the posting is parked (Rule says why); only Resume brings it
	// back. Nothing is held.
	Parked
	// InReview: the posting waits for a reviewer until Until. Nothing is
	// held.
	InReview
)

var claimOutcomes = map[ClaimOutcome]string{
	Claimed: "claimed", Recorded: "recorded", Pending: "pending", Settling: "settling",
	Decided: "decided", Busy: "busy", Parked: "parked", InReview: "in_review",
}

func (o ClaimOutcome) String() string { return claimOutcomes[o] }

// Holds reports whether the outcome leaves the caller holding the lock.
func (o ClaimOutcome) Holds() bool { return o == Claimed || o == Pending }

// Claim is the result of Ledger.Claim.
type Claim struct {
	Outcome ClaimOutcome
	Token   int64         // Claimed, Pending, Recorded: the acquisition's token
	State   State         // Recorded, Decided: the final state
	RetryIn time.Duration // Settling, Busy
	Earlier *PendingError // Pending, Settling: the earlier attempt's intent
	Rule    string        // Parked: why
	Until   time.Time     // InReview: the reviewer's deadline
	// Approved is the bid a reviewer approved (Claimed, Pending): send it,
	// not what the rules decided.
	Approved *ApprovedBid
}

// ApprovedBid is a bid as a reviewer approved it.
type ApprovedBid struct {
	Amount   float64
	Currency string
	Proposal string
}

// Claim checks a posting's record, takes its lock and a fencing token, and
// records d, in one script and one round trip. The lock and the token are
// taken as lock.Attempt prescribes, so the caller then turns a held outcome
// into a *lock.Lock (Attempt.Held) with the usual watchdog.
//
// A skip or dry run is final at once and needs no lock (the script is the
// whole critical section; its new token makes any older holder's later
// write stale). A bid leaves the lock held and an intent recorded.
//
// With WithWaitReplicas an intent short of replicas is an ErrReplicas
// error, returned with the Claim (the lock is held and the intent is on the
// master: the caller must not bid, and should Settle StateNone).
func (l *Ledger) Claim(ctx context.Context, a Attempt, marketplaceID, postingID string, d Decision) (Claim, error) {
	key := l.Key(marketplaceID, postingID)
	var fields []any
	switch d.State {
	case StateIntent:
	case StateSkipped:
		fields = []any{"rule", d.Rule, "why", d.Reason}
	case StateDryRun:
		fields = []any{"amt", strconv.FormatFloat(d.Amount, 'f', -1, 64), "cur", d.Currency, "txt", d.Proposal}
	case StateReview:
		// "why" last: the script's audit entry takes it from there.
		fields = []any{"amt", strconv.FormatFloat(d.Amount, 'f', -1, 64), "cur", d.Currency, "txt", d.Proposal, "rule", d.Rule, "why", d.Reason}
	default:
		return Claim{}, fmt.Errorf("ledger: claim %s: cannot claim for state %q", key, d.State)
	}
	keys := []string{a.Key(), a.FenceKey(), key, l.OpenKey(marketplaceID, postingID), l.PayloadKey(marketplaceID, postingID),
		l.ReviewKey(marketplaceID, postingID), l.AuditKey(marketplaceID, postingID), l.OutboxKey(marketplaceID, postingID)}
	if d.ResultKey != "" {
		keys = append(keys, d.ResultKey)
	}
	args := append([]any{a.Holder(), ms(a.TTL()), ms(l.retention), postingID, ms(d.Settle), string(d.State), d.Result,
		d.ReviewUntil.UnixMilli(), l.notifyArg(marketplaceID), d.Account}, fields...)
	res, replErr, err := l.run(ctx, l.sc.claim, keys, args...)
	if err != nil {
		l.count("error")
		return Claim{}, fmt.Errorf("ledger: claim %s: %w", key, err)
	}
	c, err := parseClaim(key, res)
	if err != nil {
		l.count("error")
		return Claim{}, err
	}
	switch c.Outcome {
	case Claimed, Recorded, Pending, InReview:
		if replErr != nil {
			replErr.Key = key
			l.count("unreplicated")
			if c.Outcome == Claimed {
				return c, replErr
			}
			return c, nil
		}
		l.count("ok")
	case Decided:
		l.count("decided")
	case Busy:
		l.count("busy")
	case Parked:
		l.count("parked")
	case Settling:
		l.count("pending")
	}
	return c, nil
}

func parseClaim(key string, r reply) (Claim, error) {
	bad := func(err error) (Claim, error) {
		return Claim{}, fmt.Errorf("%w: claim of %s: reply %v: %v", ErrCorrupt, key, []any(r), err)
	}
	var c Claim
	var err error
	switch r.str(0) {
	case "intent":
		c.Outcome = Claimed
		if c.Token, err = r.int(1); err == nil {
			c.Approved, err = approvedAt(r, 2)
		}
	case "review":
		c.Outcome = InReview
		var until int64
		until, err = r.int(1)
		c.Until = time.UnixMilli(until)
	case "final":
		c.Outcome, c.State = Recorded, State(r.str(1))
		c.Token, err = r.int(2)
	case "pending":
		c.Outcome = Pending
		if c.Token, err = r.int(1); err == nil {
			if c.Earlier, err = pendingAt(key, r, 2); err == nil {
				c.Earlier.Account = r.str(5)
				c.Approved, err = approvedAt(r, 6)
			}
		}
	case "settling":
		c.Outcome = Settling
		var wait int64
		if wait, err = r.int(1); err == nil {
			c.RetryIn = time.Duration(wait) * time.Millisecond
			c.Earlier = &PendingError{Key: key, Holder: r.str(2)}
		}
	case "decided":
		c.Outcome, c.State = Decided, State(r.str(1))
	case "busy":
		c.Outcome = Busy
		var ttl int64
		ttl, err = r.int(1)
		c.RetryIn = time.Duration(ttl) * time.Millisecond
	case "parked":
		c.Outcome, c.Rule = Parked, r.str(1)
	default:
		return bad(fmt.Errorf("unknown verdict"))
	}
	if err != nil {
		return bad(err)
	}
	return c, nil
}

// pendingAt reads "holder, token, at (ms)" from r starting at i.
func pendingAt(key string, r reply, i int) (*PendingError, error) {
	tok, err := r.int(i + 1)
	if err != nil {
		return nil, err
	}
	at, err := r.int(i + 2)
	if err != nil {
		return nil, err
	}
	return &PendingError{Key: key, Holder: r.str(i), Token: tok, At: time.UnixMilli(at)}, nil
}

// approvedAt reads "amount, currency, proposal" from r starting at i, if
// the reply carries them.
func approvedAt(r reply, i int) (*ApprovedBid, error) {
	if len(r) <= i {
		return nil, nil
	}
	amt, err := strconv.ParseFloat(r.str(i), 64)
	if err != nil {
		return nil, fmt.Errorf("approved amount %q", r.str(i))
	}
	return &ApprovedBid{Amount: amt, Currency: r.str(i + 1), Proposal: r.str(i + 2)}, nil
}

func (l *Ledger) count(result string) { l.writes.WithLabelValues(result).Inc() }
