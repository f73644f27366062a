package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redisx"
)

// Found is one posting a scan found, for Discover.
type Found struct {
	PostingID string
	Payload   []byte // the bid task's payload: what recovery enqueues again
}

// Discovery says what Discover found a posting to be.
type Discovery int

const (
	// Open: undecided (new, or known and still undecided): enqueue its task
	// (asynq refuses a second one with the same ID).
	Open Discovery = iota + 1
	// Known: already decided, or parked: do not enqueue.
	Known
)

// Discover records, in one pipelined round trip for a whole page, that a
// scan found postings: each undecided one gets its payload stored in its
// record and an entry in the open index, so that if its task is lost (a
// failover, an eviction, someone deleting it) the recovery pass can enqueue
// it again. It reports which postings are open. Call it before enqueueing
// the postings' tasks: a crash between the two leaves a discovered posting
// without a task, which is what recovery finds.
func (l *Ledger) Discover(ctx context.Context, marketplaceID string, found []Found) ([]Discovery, error) {
	if len(found) == 0 {
		return nil, nil
	}
	cmds, err := l.pipelined(ctx, l.sc.discover, len(found), func(i int) ([]string, []any) {
		f := found[i]
		return []string{l.Key(marketplaceID, f.PostingID), l.OpenKey(marketplaceID, f.PostingID), l.PayloadKey(marketplaceID, f.PostingID)},
			[]any{f.PostingID, f.Payload, ms(l.recheck), ms(l.retention)}
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: discover %d postings of %s: %w", len(found), marketplaceID, err)
	}
	out := make([]Discovery, len(found))
	for i, c := range cmds {
		v, err := c.Text()
		if err != nil {
			return nil, fmt.Errorf("ledger: discover %s:%s: %w", marketplaceID, found[i].PostingID, err)
		}
		switch v {
		case "new", "open":
			out[i] = Open
		case "decided", "parked":
			out[i] = Known
		default:
			return nil, fmt.Errorf("%w: reply %q to discover of %s:%s", ErrCorrupt, v, marketplaceID, found[i].PostingID)
		}
	}
	return out, nil
}

// Due takes up to limit of a marketplace's open postings whose check is due
// (discovered, or last checked, more than the recheck interval ago) and
// moves their next check one interval ahead, so passes on other instances
// do not take them too. With hash tags it reads one index per Cluster slot
// (16384 small commands, pipelined per node).
func (l *Ledger) Due(ctx context.Context, marketplaceID string, limit int) ([]string, error) {
	keys := l.indexKeys("open", marketplaceID)
	cmds, err := l.pipelined(ctx, l.sc.due, len(keys), func(i int) ([]string, []any) {
		return []string{keys[i]}, []any{limit, ms(l.recheck)}
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: due postings of %s: %w", marketplaceID, err)
	}
	var out []string
	for _, c := range cmds {
		v, err := c.StringSlice()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("ledger: due postings of %s: %w", marketplaceID, err)
		}
		out = append(out, v...)
		if limit > 0 && len(out) >= limit {
			return out[:limit], nil
		}
	}
	return out, nil
}

// States returns the state of each posting's record (StateNone for none),
// in one pipelined round trip.
func (l *Ledger) States(ctx context.Context, marketplaceID string, postingIDs []string) ([]State, error) {
	cmds := make([]*redis.StringCmd, len(postingIDs))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range postingIDs {
			cmds[i] = p.HGet(ctx, l.Key(marketplaceID, id), "s")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: states of %d postings: %w", len(postingIDs), err)
	}
	out := make([]State, len(postingIDs))
	for i, c := range cmds {
		s, err := c.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("ledger: state of %s:%s: %w", marketplaceID, postingIDs[i], err)
		}
		out[i] = State(s)
	}
	return out, nil
}

func sortParked(ps []ParkedPosting) {
	sortByTime(ps, func(p ParkedPosting) time.Time { return p.Since })
}

func sortByTime[T any](s []T, at func(T) time.Time) {
	slices.SortStableFunc(s, func(a, b T) int { return at(a).Compare(at(b)) })
}

// pipelined runs s n times in one pipeline, with the keys and arguments of
// each run from kv. A Redis that lacks the script (NOSCRIPT: nothing ran)
// gets it loaded and the pipeline once more.
func (l *Ledger) pipelined(ctx context.Context, s *redisx.Script, n int, kv func(i int) ([]string, []any)) ([]*redis.Cmd, error) {
	for attempt := 0; ; attempt++ {
		cmds := make([]*redis.Cmd, n)
		_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range cmds {
				keys, args := kv(i)
				cmds[i] = s.EvalSha(ctx, p, keys, args...)
			}
			return nil
		})
		if err == nil || errors.Is(err, redis.Nil) {
			return cmds, nil
		}
		if !redis.HasErrorPrefix(err, "NOSCRIPT") || attempt > 0 {
			return nil, err
		}
		if err := s.Load(ctx, l.rdb).Err(); err != nil {
			return nil, fmt.Errorf("load script: %w", err)
		}
	}
}

// Forget removes a posting from the open index (its record expired before
// it was decided; nothing is left to decide or recover).
func (l *Ledger) Forget(ctx context.Context, marketplaceID, postingID string) error {
	if err := l.rdb.ZRem(ctx, l.OpenKey(marketplaceID, postingID), postingID).Err(); err != nil {
		return fmt.Errorf("ledger: forget %s:%s: %w", marketplaceID, postingID, err)
	}
	return nil
}
