package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// OpenCount is how many of a marketplace's postings are undecided: in the
// open index, waiting for their bid task (or the recovery pass). With hash
// tags it adds up one index per Cluster slot, in one pipeline.
func (l *Ledger) OpenCount(ctx context.Context, marketplaceID string) (int64, error) {
	return l.indexCount(ctx, "open", marketplaceID)
}

// ParkedCount is how many of a marketplace's postings are parked (what
// Parked lists, without reading the list).
func (l *Ledger) ParkedCount(ctx context.Context, marketplaceID string) (int64, error) {
	return l.indexCount(ctx, "parked", marketplaceID)
}

// ReviewCount is how many of a marketplace's postings wait for a reviewer.
func (l *Ledger) ReviewCount(ctx context.Context, marketplaceID string) (int64, error) {
	return l.indexCount(ctx, "review", marketplaceID)
}

func (l *Ledger) indexCount(ctx context.Context, kind, marketplaceID string) (int64, error) {
	keys := l.indexKeys(kind, marketplaceID)
	cmds := make([]*redis.IntCmd, len(keys))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.ZCard(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("ledger: count %s postings of %s: %w", kind, marketplaceID, err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}
