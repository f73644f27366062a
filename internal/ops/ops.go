// Package ops holds the operator commands' logic: listing and releasing
// locks, and ledger statistics, all by SCAN (never KEYS) so they are safe on
// a busy production Redis.
package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
)

// ErrNotHeld is returned by ReleaseLock when the lock is gone or its holder
// changed since it was read.
var ErrNotHeld = errors.New("lock not held by the expected holder")

// LockInfo is one lock key as found in Redis.
type LockInfo struct {
	Key         string
	Marketplace string
	Posting     string
	Holder      string
	TTL         time.Duration // -1: no TTL (should never happen), -2: gone
}

// scanKeys walks pattern on every master (Cluster) or the one server.
func scanKeys(ctx context.Context, rdb redis.UniversalClient, pattern string, fn func(context.Context, redis.UniversalClient, []string) error) error {
	walk := func(ctx context.Context, c redis.UniversalClient) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, 500).Result()
			if err != nil {
				return fmt.Errorf("scan %s: %w", pattern, err)
			}
			if len(keys) > 0 {
				if err := fn(ctx, c, keys); err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return walk(ctx, c) })
	}
	return walk(ctx, rdb)
}

// ParseLockKey splits "<prefix>:<marketplace>:<posting>" (hash tags allowed).
func ParseLockKey(prefix, key string) (marketplaceID, postingID string, ok bool) {
	rest, found := strings.CutPrefix(key, prefix+":")
	if !found {
		return "", "", false
	}
	if strings.HasPrefix(rest, "{") && strings.HasSuffix(rest, "}") {
		rest = rest[1 : len(rest)-1]
	}
	return strings.Cut(rest, ":")
}

// ListLocks returns every lock under keys' prefix, optionally of one
// marketplace, sorted by key.
func ListLocks(ctx context.Context, rdb redis.UniversalClient, keys lock.Keys, marketplaceID string) ([]LockInfo, error) {
	var out []LockInfo
	err := scanKeys(ctx, rdb, escapeGlob(keys.Prefix)+":*", func(ctx context.Context, c redis.UniversalClient, ks []string) error {
		for _, k := range ks {
			mp, posting, ok := ParseLockKey(keys.Prefix, k)
			if !ok || (marketplaceID != "" && mp != marketplaceID) {
				continue
			}
			holder, err := c.Get(ctx, k).Result()
			if errors.Is(err, redis.Nil) {
				continue // released between SCAN and GET
			}
			if err != nil {
				return fmt.Errorf("get %s: %w", k, err)
			}
			ttl, err := c.PTTL(ctx, k).Result()
			if err != nil {
				return fmt.Errorf("pttl %s: %w", k, err)
			}
			out = append(out, LockInfo{Key: k, Marketplace: mp, Posting: posting, Holder: holder, TTL: ttl})
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, err
}

// compareAndDelete deletes the lock only if it still has the holder the
// operator saw: a lock taken over since then belongs to someone else
// (the seed's unconditional DEL was exactly this bug).
var compareAndDelete = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// ReadLock returns a posting's lock holder ("" when free).
func ReadLock(ctx context.Context, rdb redis.UniversalClient, keys lock.Keys, marketplaceID, postingID string) (LockInfo, error) {
	k := keys.Lock(marketplaceID, postingID)
	info := LockInfo{Key: k, Marketplace: marketplaceID, Posting: postingID}
	holder, err := rdb.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("get %s: %w", k, err)
	}
	info.Holder = holder
	info.TTL, err = rdb.PTTL(ctx, k).Result()
	if err != nil {
		return info, fmt.Errorf("pttl %s: %w", k, err)
	}
	return info, nil
}

// ReleaseLock deletes key if its holder is still holder.
func ReleaseLock(ctx context.Context, rdb redis.UniversalClient, key, holder string) error {
	n, err := compareAndDelete.Run(ctx, rdb, []string{key}, holder).Int()
	if err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", key, ErrNotHeld)
	}
	return nil
}

// LedgerStats counts ledger records by state under prefix, optionally of
// one marketplace.
func LedgerStats(ctx context.Context, rdb redis.UniversalClient, prefix, marketplaceID string) (map[ledger.State]int, error) {
	counts := map[ledger.State]int{}
	pattern := escapeGlob(prefix) + ":*"
	err := scanKeys(ctx, rdb, pattern, func(ctx context.Context, c redis.UniversalClient, ks []string) error {
		var sel []string
		for _, k := range ks {
			mp, _, ok := ParseLockKey(prefix, k)
			if ok && (marketplaceID == "" || mp == marketplaceID) {
				sel = append(sel, k)
			}
		}
		cmds := make([]*redis.StringCmd, len(sel))
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range sel {
				cmds[i] = p.HGet(ctx, k, "s")
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read ledger states: %w", err)
		}
		for _, cmd := range cmds {
			s, err := cmd.Result()
			if err == nil || errors.Is(err, redis.Nil) { // no state: undecided
				counts[ledger.State(s)]++
			}
		}
		return nil
	})
	return counts, err
}

// ListState lists up to limit (0: all) of a marketplace's postings whose
// record is in state, by SCAN.
func ListState(ctx context.Context, rdb redis.UniversalClient, prefix, marketplaceID string, state ledger.State, limit int) ([]string, error) {
	var out []string
	errEnough := errors.New("enough")
	pattern := escapeGlob(prefix) + ":*"
	err := scanKeys(ctx, rdb, pattern, func(ctx context.Context, c redis.UniversalClient, ks []string) error {
		var sel, ids []string
		for _, k := range ks {
			if mp, id, ok := ParseLockKey(prefix, k); ok && mp == marketplaceID {
				sel, ids = append(sel, k), append(ids, id)
			}
		}
		cmds := make([]*redis.StringCmd, len(sel))
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range sel {
				cmds[i] = p.HGet(ctx, k, "s")
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read ledger states: %w", err)
		}
		for i, cmd := range cmds {
			s, err := cmd.Result()
			if (err == nil || errors.Is(err, redis.Nil)) && ledger.State(s) == state {
				out = append(out, ids[i])
				if limit > 0 && len(out) >= limit {
					return errEnough
				}
			}
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	sort.Strings(out)
	return out, err
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}
