package rules

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Waits is the index of postings waiting for a bid-budget window of a
// marketplace: a sorted set, <prefix>:{<marketplace>}:waiting, of posting
// IDs scored by when their window opens (Unix ms). The status page counts
// it per window; the recovery pass reads it to know that a waiting
// posting's task is a scheduled continuation, not lost. Entries whose
// window has opened are stale and pruned on the next write.
type Waits struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewWaits reads and writes the waiting index under prefix ("" = the bid
// budget's default).
func NewWaits(rdb redis.UniversalClient, prefix string) *Waits {
	if prefix == "" {
		prefix = DefaultBudgetPrefix
	}
	return &Waits{rdb: rdb, prefix: prefix}
}

// Key is the index of marketplaceID.
func (w *Waits) Key(marketplaceID string) string {
	return w.prefix + ":{" + marketplaceID + "}:waiting"
}

// Add records that postingID waits until its window opens.
func (w *Waits) Add(ctx context.Context, marketplaceID, postingID string, until time.Time) error {
	key := w.Key(marketplaceID)
	_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(time.Now().UnixMilli(), 10))
		p.ZAdd(ctx, key, redis.Z{Score: float64(until.UnixMilli()), Member: postingID})
		// The longest window is a week; the index never outlives it by much.
		p.Expire(ctx, key, 8*24*time.Hour)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: record %s:%s waiting: %w", ErrBudgetUnavailable, marketplaceID, postingID, err)
	}
	return nil
}

// Waiting reports, for each posting, whether it waits for a window that has
// not opened by now.
func (w *Waits) Waiting(ctx context.Context, marketplaceID string, postingIDs []string, now time.Time) ([]bool, error) {
	out := make([]bool, len(postingIDs))
	if len(postingIDs) == 0 {
		return out, nil
	}
	scores, err := w.rdb.ZMScore(ctx, w.Key(marketplaceID), postingIDs...).Result()
	if err != nil {
		return nil, fmt.Errorf("read the budget waits of %s: %w", marketplaceID, err)
	}
	for i, s := range scores {
		out[i] = s > float64(now.UnixMilli())
	}
	return out, nil
}

// Counts returns how many postings wait for each window not yet open, by
// the window's opening.
func (w *Waits) Counts(ctx context.Context, marketplaceID string, now time.Time) (map[time.Time]int, error) {
	zs, err := w.rdb.ZRangeByScoreWithScores(ctx, w.Key(marketplaceID), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("read the budget waits of %s: %w", marketplaceID, err)
	}
	out := map[time.Time]int{}
	for _, z := range zs {
		out[time.UnixMilli(int64(z.Score)).UTC()]++
	}
	return out, nil
}

// Wait records that postingID waits for its window until then.
func (b *Budget) Wait(ctx context.Context, marketplaceID, postingID string, until time.Time) error {
	if err := b.check(marketplaceID); err != nil {
		return err
	}
	return NewWaits(b.rdb, b.prefix).Add(ctx, marketplaceID, postingID, until)
}
