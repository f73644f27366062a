package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// BidOutcome is what became of a placed bid. It is kept apart from the
// decision: a placed posting stays StatePlaced (final: never bid on again)
// whatever its outcome.
type BidOutcome string

// Bid outcomes.
const (
	BidPending   BidOutcome = "pending" // no answer yet
	BidAwarded   BidOutcome = "awarded"
	BidRejected  BidOutcome = "rejected"
	BidRetracted BidOutcome = "retracted"
	// BidNoAnswer: still pending when the tracker's horizon passed; it
	// stopped asking.
	BidNoAnswer BidOutcome = "no_answer"
)

// Outcomes lists every outcome, in the order reports show them.
var Outcomes = []BidOutcome{BidPending, BidAwarded, BidRejected, BidRetracted, BidNoAnswer}

func (o BidOutcome) valid() bool {
	switch o {
	case "", BidPending, BidAwarded, BidRejected, BidRetracted, BidNoAnswer:
		return true
	}
	return false
}

// Decided says whether the marketplace (or a retract) settled the bid.
func (o BidOutcome) Decided() bool {
	return o == BidAwarded || o == BidRejected || o == BidRetracted
}

// ErrNotPlaced: the posting has no placed bid with that ID (undecided,
// decided otherwise, or its record expired).
var ErrNotPlaced = errors.New("ledger: no placed bid")

// WithTracking makes every bid placed on one of marketplaces enter its
// marketplace's placed index (PlacedKey), in the script that records it,
// for the tracker to ask after its outcome first after `first`. Off by
// default; marketplaces whose adapter cannot read bid statuses should not
// be listed (nothing would drain their index).
func WithTracking(first time.Duration, marketplaces ...string) Option {
	return func(l *Ledger) {
		l.trackFirst = first
		l.tracked = map[string]bool{}
		for _, m := range marketplaces {
			l.tracked[m] = true
		}
	}
}

// trackArg is the settle script's first-poll argument: "" when off.
func (l *Ledger) trackArg(marketplaceID string) string {
	if l.trackFirst <= 0 || !l.tracked[marketplaceID] {
		return ""
	}
	return strconv.FormatInt(ms(l.trackFirst), 10)
}

// TrackedBid is a placed bid whose outcome is due to be asked for.
type TrackedBid struct {
	PostingID string
	BidID     string
	PlacedAt  time.Time
	Outcome   BidOutcome
	Account   string // the account that bid (agency mode), "" for a marketplace with one
}

// DueBids takes a marketplace's placed bids whose poll is due, at most
// limit, and pushes each one's next poll `again` ahead, so concurrent
// trackers do not both take it (RecordOutcome sets the real next poll).
// Bids whose record is gone or no longer placed are dropped from the index.
func (l *Ledger) DueBids(ctx context.Context, marketplaceID string, limit int, again time.Duration) ([]TrackedBid, error) {
	keys := l.indexKeys("placed", marketplaceID)
	cmds, err := l.pipelined(ctx, l.sc.due, len(keys), func(i int) ([]string, []any) {
		return []string{keys[i]}, []any{limit, ms(again)}
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: due bids of %s: %w", marketplaceID, err)
	}
	var ids []string
	for _, c := range cmds {
		v, err := c.StringSlice()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("ledger: due bids of %s: %w", marketplaceID, err)
		}
		ids = append(ids, v...)
		if limit > 0 && len(ids) >= limit {
			ids = ids[:limit]
			break
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	recs := make([]*redis.SliceCmd, len(ids))
	_, err = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			recs[i] = p.HMGet(ctx, l.Key(marketplaceID, id), "s", "b", "at", "o", "ac")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: due bids of %s: %w", marketplaceID, err)
	}
	out := make([]TrackedBid, 0, len(ids))
	var gone []string
	for i, c := range recs {
		v := c.Val()
		s, _ := v[0].(string)
		b, _ := v[1].(string)
		at, _ := v[2].(string)
		o, _ := v[3].(string)
		ac, _ := v[4].(string)
		ms, err := strconv.ParseInt(at, 10, 64)
		if State(s) != StatePlaced || b == "" || err != nil {
			gone = append(gone, ids[i])
			continue
		}
		t := TrackedBid{PostingID: ids[i], BidID: b, PlacedAt: time.UnixMilli(ms), Outcome: BidOutcome(o), Account: ac}
		if t.Outcome == "" {
			t.Outcome = BidPending
		}
		out = append(out, t)
	}
	if len(gone) > 0 {
		_, err = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, id := range gone {
				p.ZRem(ctx, l.PlacedKey(marketplaceID, id), id)
			}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("ledger: drop %d stale tracked bids of %s: %w", len(gone), marketplaceID, err)
		}
	}
	return out, nil
}

// Observed is one look at a placed bid's outcome.
type Observed struct {
	PostingID string
	BidID     string
	Outcome   BidOutcome
	Since     time.Time // when it changed, by the marketplace; zero: now
	// Next is when to ask again; 0 stops polling (a decided outcome always
	// stops it).
	Next time.Duration
	By   string // who looked: "tracker", or the operator of a retract
	Text string // the marketplace's words, printable
}

// OutcomeChange is what RecordOutcomes made of one Observed.
type OutcomeChange struct {
	Changed bool
	From    BidOutcome // the outcome before (the current one when unchanged)
	// Err is ErrNotPlaced when the posting holds no placed bid with that
	// ID (its index entry is dropped), or a Redis error for this one.
	Err error
}

// RecordOutcome records what became of a placed bid, with its time and an
// audit entry, when it changed; a decided outcome is not undone by a later
// pending or no_answer. It fails with ErrNotPlaced when the posting holds
// no placed bid with that ID.
func (l *Ledger) RecordOutcome(ctx context.Context, marketplaceID string, o Observed) (OutcomeChange, error) {
	ch, err := l.RecordOutcomes(ctx, marketplaceID, []Observed{o})
	if err != nil {
		return OutcomeChange{}, err
	}
	return ch[0], ch[0].Err
}

// RecordOutcomes is RecordOutcome for many bids in one round trip. Each
// change's own failure is in its Err; the error is for the whole call
// (nothing was recorded, or an observation is malformed).
func (l *Ledger) RecordOutcomes(ctx context.Context, marketplaceID string, obs []Observed) ([]OutcomeChange, error) {
	for _, o := range obs {
		if !o.Outcome.valid() || o.Outcome == "" || o.PostingID == "" || o.BidID == "" {
			return nil, fmt.Errorf("ledger: outcome of %s: bad observation (posting %q, bid %q, outcome %q)", l.Key(marketplaceID, o.PostingID), o.PostingID, o.BidID, o.Outcome)
		}
	}
	cmds, err := l.pipelined(ctx, l.sc.outcome, len(obs), func(i int) ([]string, []any) {
		o := obs[i]
		next := ""
		if o.Next > 0 {
			next = strconv.FormatInt(ms(o.Next), 10)
		}
		var since int64
		if !o.Since.IsZero() {
			since = o.Since.UnixMilli()
		}
		keys := []string{l.Key(marketplaceID, o.PostingID), l.PlacedKey(marketplaceID, o.PostingID), l.AuditKey(marketplaceID, o.PostingID)}
		return keys, []any{o.PostingID, o.BidID, string(o.Outcome), since, next, o.By, o.Text, ms(l.retention)}
	})
	if err != nil && len(cmds) == 0 {
		return nil, fmt.Errorf("ledger: outcomes of %d bids of %s: %w", len(obs), marketplaceID, err)
	}
	out := make([]OutcomeChange, len(obs))
	for i, c := range cmds {
		key := l.Key(marketplaceID, obs[i].PostingID)
		v, err := c.Slice()
		if err != nil {
			out[i].Err = fmt.Errorf("ledger: outcome of %s: %w", key, err)
			continue
		}
		res := reply(v)
		switch res.str(0) {
		case "changed":
			out[i] = OutcomeChange{Changed: true, From: BidOutcome(res.str(1))}
		case "same":
			out[i] = OutcomeChange{From: BidOutcome(res.str(1))}
		case "gone":
			st := res.str(1)
			if st == "" {
				st = "undecided or expired"
			}
			out[i].Err = fmt.Errorf("%w: %s (bid %s) is %s", ErrNotPlaced, key, obs[i].BidID, st)
		default:
			out[i].Err = fmt.Errorf("%w: reply %v to outcome of %s", ErrCorrupt, v, key)
		}
	}
	return out, nil
}

// PlacedRow is one placed bid as reports read it.
type PlacedRow struct {
	PostingID string
	BidID     string
	PlacedAt  time.Time
	Amount    float64
	Currency  string
	Outcome   BidOutcome
	OutcomeAt time.Time
	Dims      string
	Account   string // agency mode: the account that bid
}

// bidsBatch bounds one pipeline of record reads.
const bidsBatch = 1000

// Bids lists a marketplace's bids placed in [since, until), oldest first,
// from the bids index (one read per Cluster slot with hash tags) and their
// records. A bid whose record expired is left out.
func (l *Ledger) Bids(ctx context.Context, marketplaceID string, since, until time.Time) ([]PlacedRow, error) {
	keys := l.indexKeys("bids", marketplaceID)
	var ids []string
	var at []float64
	for start := 0; start < len(keys); start += bidsBatch {
		part := keys[start:min(start+bidsBatch, len(keys))]
		cmds := make([]*redis.ZSliceCmd, len(part))
		_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range part {
				cmds[i] = p.ZRangeByScoreWithScores(ctx, k, &redis.ZRangeBy{
					Min: strconv.FormatInt(since.UnixMilli(), 10), Max: "(" + strconv.FormatInt(until.UnixMilli(), 10)})
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("ledger: bids of %s: %w", marketplaceID, err)
		}
		for _, c := range cmds {
			for _, z := range c.Val() {
				id, _ := z.Member.(string)
				ids, at = append(ids, id), append(at, z.Score)
			}
		}
	}
	out := make([]PlacedRow, 0, len(ids))
	for start := 0; start < len(ids); start += bidsBatch {
		part := ids[start:min(start+bidsBatch, len(ids))]
		cmds := make([]*redis.MapStringStringCmd, len(part))
		_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range part {
				cmds[i] = p.HGetAll(ctx, l.Key(marketplaceID, id))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("ledger: bids of %s: %w", marketplaceID, err)
		}
		for i, c := range cmds {
			rec, err := parse(c.Val())
			if err != nil || rec.State != StatePlaced {
				continue // expired, or not ours to report
			}
			out = append(out, PlacedRow{PostingID: part[i], BidID: rec.BidID, PlacedAt: time.UnixMilli(int64(at[start+i])),
				Amount: rec.Amount, Currency: rec.Currency, Outcome: rec.Outcome, OutcomeAt: rec.OutcomeAt, Dims: rec.Dims, Account: rec.Account})
		}
	}
	slices.SortStableFunc(out, func(a, b PlacedRow) int { return a.PlacedAt.Compare(b.PlacedAt) })
	return out, nil
}
