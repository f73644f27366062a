package scanner

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/lock"
)

// Key prefixes. The cursor and the scan lock of one marketplace share a hash
// tag in Cluster mode because the cursor write checks the lock in one script.
const (
	DefaultCursorKeyPrefix = "bid_scan_cursor"
	DefaultLockKeyPrefix   = "bid_scan_lock"
	DefaultRateKeyPrefix   = "bid_scan_rate"
	// scanLockName is the "posting" part of the scan lock's key: one lock
	// per marketplace.
	scanLockName = "scan"
	// maxCursorLen bounds a stored cursor; anything longer did not come
	// from a marketplace and is treated as malformed.
	maxCursorLen = 4096
)

// commitLua advances the cursor only while the caller still holds the scan
// lock. A scan that stalled past its lock's TTL therefore cannot move the
// cursor under the scan that took over, so cursor writes never interleave.
const commitLua = `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`

type cursorStore struct {
	rdb      redis.UniversalClient
	prefix   string
	hashTags bool
	commit   *redis.Script
}

func newCursorStore(rdb redis.UniversalClient, hashTags bool) *cursorStore {
	return &cursorStore{rdb: rdb, prefix: DefaultCursorKeyPrefix, hashTags: hashTags, commit: redis.NewScript(commitLua)}
}

// Key is the cursor key of a marketplace: "bid_scan_cursor:<marketplace>",
// or with hash tags "bid_scan_cursor:{<marketplace>:scan}", the slot of the
// marketplace's scan lock.
func (c *cursorStore) Key(marketplaceID string) string {
	if !c.hashTags {
		return c.prefix + ":" + marketplaceID
	}
	return c.prefix + ":" + lock.Keys{HashTags: true}.Tag(marketplaceID, scanLockName)
}

func (c *cursorStore) get(ctx context.Context, marketplaceID string) (string, error) {
	v, err := c.rdb.Get(ctx, c.Key(marketplaceID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("scanner: read cursor of %s: %w", marketplaceID, err)
	}
	return v, nil
}

// set stores cursor if lk is still held; lock.ErrLockLost otherwise.
func (c *cursorStore) set(ctx context.Context, lk *lock.Lock, marketplaceID, cursor string) error {
	ok, err := c.commit.Run(ctx, c.rdb, []string{c.Key(marketplaceID), lk.Key()}, cursor, lk.Holder()).Int64()
	if err != nil {
		return fmt.Errorf("scanner: store cursor of %s: %w", marketplaceID, err)
	}
	if ok != 1 {
		return fmt.Errorf("scanner: store cursor of %s: %w", marketplaceID, lock.ErrLockLost)
	}
	return nil
}

// plausibleCursor rejects values no marketplace issued (binary junk, huge
// blobs) before they are sent anywhere.
func plausibleCursor(s string) bool {
	if len(s) > maxCursorLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
