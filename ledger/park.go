package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Park marks a posting that cannot progress (its attempts ran out, or its
// task cannot be run) as parked, with a rule code and a reason: a state
// that is counted, listed and alerted on, and that only Resume ends, in
// place of a task that ends with nothing recorded. An unresolved intent is
// kept under the park, so a resumed posting reconciles before any bid.
//
// holder is the parker's lock holder when it holds the posting's lock (the
// lock is then released), "" otherwise. Park returns ErrLocked when another
// worker holds the lock (it is making progress: nothing is parked) and
// ErrDecided over a final record. Parking a parked posting is a no-op.
func (l *Ledger) Park(ctx context.Context, lockKey, fenceKey, holder, marketplaceID, postingID, rule, reason string) error {
	key := l.Key(marketplaceID, postingID)
	keys := []string{lockKey, fenceKey, key, l.OpenKey(marketplaceID, postingID), l.ParkedKey(marketplaceID, postingID)}
	res, _, err := l.run(ctx, l.sc.park, keys, holder, rule, reason, ms(l.retention), postingID)
	if err != nil {
		l.count("error")
		return fmt.Errorf("ledger: park %s: %w", key, err)
	}
	switch res.str(0) {
	case "ok":
		l.count("ok")
		return nil
	case "decided":
		l.count("decided")
		return fmt.Errorf("%w: %s is %s", ErrDecided, key, res.str(1))
	case "busy":
		l.count("busy")
		return fmt.Errorf("%w: %s", ErrLocked, key)
	}
	l.count("error")
	return fmt.Errorf("%w: reply %v to park of %s", ErrCorrupt, []any(res), key)
}

// Resume brings a parked posting back: what it held before the park is
// restored (an unresolved intent stays one, so the next attempt reconciles
// before anything is sent) and it is open again. It returns the payload the
// scanner stored (the bid task's), for the caller to enqueue the posting's
// task again; ErrNotParked when the posting is not parked.
func (l *Ledger) Resume(ctx context.Context, marketplaceID, postingID string) ([]byte, error) {
	key := l.Key(marketplaceID, postingID)
	keys := []string{key, l.OpenKey(marketplaceID, postingID), l.ParkedKey(marketplaceID, postingID), l.PayloadKey(marketplaceID, postingID)}
	res, _, err := l.run(ctx, l.sc.resume, keys, postingID, ms(l.recheck), ms(l.retention))
	if err != nil {
		return nil, fmt.Errorf("ledger: resume %s: %w", key, err)
	}
	switch res.str(0) {
	case "ok":
		return []byte(res.str(1)), nil
	case "not_parked":
		st := res.str(1)
		if st == "" {
			st = "undecided"
		}
		return nil, fmt.Errorf("%w: %s is %s", ErrNotParked, key, st)
	}
	return nil, fmt.Errorf("%w: reply %v to resume of %s", ErrCorrupt, []any(res), key)
}

// ParkedPosting is one entry of the parked index.
type ParkedPosting struct {
	PostingID string
	Since     time.Time
}

// Parked lists a marketplace's parked postings, oldest first, at most
// limit (0: all). With hash tags it reads one index per Cluster slot.
func (l *Ledger) Parked(ctx context.Context, marketplaceID string, limit int) ([]ParkedPosting, error) {
	keys := l.indexKeys("parked", marketplaceID)
	cmds := make([]*redis.ZSliceCmd, len(keys))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.ZRangeWithScores(ctx, k, 0, -1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: list parked of %s: %w", marketplaceID, err)
	}
	var out []ParkedPosting
	for _, c := range cmds {
		for _, z := range c.Val() {
			id, _ := z.Member.(string)
			out = append(out, ParkedPosting{PostingID: id, Since: time.UnixMilli(int64(z.Score))})
		}
	}
	sortParked(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
