package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReviewAction is what a reviewer (or the deadline) does to a posting in
// review.
type ReviewAction string

const (
	Approve ReviewAction = "approve"
	Reject  ReviewAction = "reject"
	Expire  ReviewAction = "expire"
	// Close ends a review because the marketplace closed the posting: a
	// bid could only be refused. The posting is expired, rule
	// posting_closed.
	Close ReviewAction = "close"
)

var (
	// ErrNotInReview: the posting is not in review (never was, or decided).
	ErrNotInReview = errors.New("ledger: posting not in review")
	// ErrReviewExpired: an approval came after the deadline; the posting
	// expired instead.
	ErrReviewExpired = errors.New("ledger: review deadline passed")
)

// Review is one review action.
type Review struct {
	Action ReviewAction
	By     string // who: a user name, "deadline", "closed"
	Why    string // a rejection's reason, or a note
	// Amount and Proposal replace the proposed bid when set (Approve); the
	// caller checks them against the rules' bounds first.
	Amount   float64
	Proposal string
}

// Reviewed is what a review action came to.
type Reviewed struct {
	// Already: this action's outcome held before (approved twice, by two
	// people at once): nothing changed, nothing more to do.
	Already bool
	State   State // the posting's state now
}

// Review applies r to a posting in review, in one script: two reviewers,
// two instances, or a reviewer racing the deadline give one outcome. An
// approval makes the posting approved (the caller then enqueues its bid
// task); a rejection or expiry is final. Every action is logged with who,
// when and what changed (Audit). It fails with ErrNotInReview (decided, or
// never in review; the error names the state) and ErrReviewExpired (an
// approval after the deadline: the posting is expired now).
func (l *Ledger) Review(ctx context.Context, marketplaceID, postingID string, r Review) (Reviewed, error) {
	key := l.Key(marketplaceID, postingID)
	amount := ""
	if r.Amount != 0 {
		amount = strconv.FormatFloat(r.Amount, 'f', -1, 64)
	}
	keys := []string{key, l.OpenKey(marketplaceID, postingID), l.ReviewKey(marketplaceID, postingID),
		l.PayloadKey(marketplaceID, postingID), l.AuditKey(marketplaceID, postingID)}
	res, _, err := l.run(ctx, l.sc.review, keys, string(r.Action), r.By, r.Why, amount, r.Proposal, postingID, ms(l.recheck), ms(l.retention))
	if err != nil {
		return Reviewed{}, fmt.Errorf("ledger: review %s: %w", key, err)
	}
	switch res.str(0) {
	case "ok":
		st := map[ReviewAction]State{Approve: StateApproved, Reject: StateRejected, Expire: StateExpired, Close: StateExpired}[r.Action]
		return Reviewed{State: st}, nil
	case "already":
		return Reviewed{Already: true, State: State(res.str(1))}, nil
	case "not_in_review":
		st := res.str(1)
		if st == "" {
			st = "undecided"
		}
		return Reviewed{State: State(res.str(1))}, fmt.Errorf("%w: %s is %s", ErrNotInReview, key, st)
	case "expired":
		return Reviewed{State: StateExpired}, fmt.Errorf("%w: %s expired instead", ErrReviewExpired, key)
	}
	return Reviewed{}, fmt.Errorf("%w: reply %v to review of %s", ErrCorrupt, []any(res), key)
}

// Queued is one entry of the review queue.
type Queued struct {
	PostingID string
	Until     time.Time
}

// Reviews lists a marketplace's postings in review, nearest deadline first,
// at most limit (0: all).
func (l *Ledger) Reviews(ctx context.Context, marketplaceID string, limit int) ([]Queued, error) {
	return l.listIndex(ctx, "review", marketplaceID, "+inf", limit)
}

// DueReviews lists the postings whose review deadline has passed by now.
func (l *Ledger) DueReviews(ctx context.Context, marketplaceID string, now time.Time, limit int) ([]Queued, error) {
	return l.listIndex(ctx, "review", marketplaceID, strconv.FormatInt(now.UnixMilli(), 10), limit)
}

func (l *Ledger) listIndex(ctx context.Context, kind, marketplaceID, maxScore string, limit int) ([]Queued, error) {
	keys := l.indexKeys(kind, marketplaceID)
	cmds := make([]*redis.ZSliceCmd, len(keys))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.ZRangeByScoreWithScores(ctx, k, &redis.ZRangeBy{Min: "-inf", Max: maxScore})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: list %s of %s: %w", kind, marketplaceID, err)
	}
	var out []Queued
	for _, c := range cmds {
		for _, z := range c.Val() {
			id, _ := z.Member.(string)
			out = append(out, Queued{PostingID: id, Until: time.UnixMilli(int64(z.Score))})
		}
	}
	sortByTime(out, func(r Queued) time.Time { return r.Until })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// AuditEntry is one line of a posting's log of what people and the
// tracker did after the rules decided.
type AuditEntry struct {
	At      time.Time
	Action  string // review (the rules sent it), approve, reject, expire, close, outcome
	By      string
	Why     string
	Changes map[string]Change // approve: what the reviewer changed
	Outcome BidOutcome        // outcome: the bid's new outcome
	Since   time.Time         // outcome: when it changed, as the marketplace says
}

// Change is one field a reviewer changed.
type Change struct{ From, To string }

// Audit returns a posting's log (review actions, outcome changes), oldest
// first.
func (l *Ledger) Audit(ctx context.Context, marketplaceID, postingID string) ([]AuditEntry, error) {
	vals, err := l.rdb.LRange(ctx, l.AuditKey(marketplaceID, postingID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: audit of %s:%s: %w", marketplaceID, postingID, err)
	}
	out := make([]AuditEntry, 0, len(vals))
	for _, v := range vals {
		var e struct {
			At      int64  `json:"at"`
			Action  string `json:"action"`
			By      string `json:"by"`
			Why     string `json:"why"`
			Outcome string `json:"outcome"`
			Since   int64  `json:"since"`
			Changes map[string]struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"changes"`
		}
		if json.Unmarshal([]byte(v), &e) != nil {
			continue // not ours; never a panic on what Redis holds
		}
		a := AuditEntry{At: time.UnixMilli(e.At), Action: e.Action, By: e.By, Why: e.Why, Outcome: BidOutcome(e.Outcome)}
		if e.Since > 0 {
			a.Since = time.UnixMilli(e.Since)
		}
		for k, c := range e.Changes {
			if a.Changes == nil {
				a.Changes = map[string]Change{}
			}
			a.Changes[k] = Change{From: c.From, To: c.To}
		}
		out = append(out, a)
	}
	return out, nil
}
