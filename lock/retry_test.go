package lock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/lock"
)

// A network that fails after Redis ran a script makes go-redis send the
// script again (MaxRetries, default 3). These tests lose exactly one reply
// and check that the second run does not act as a second acquisition.

func dropperClient(t *testing.T) (*redistest.ReplyDropper, *redis.Client, *redis.Client) {
	t.Helper()
	s := redistest.Start(t)
	d := redistest.NewReplyDropper(t, s)
	rdb := redis.NewClient(&redis.Options{Addr: d.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return d, rdb, s.Client(t)
}

// warm runs one acquire and release, so the scripts are in Redis' cache and
// the reply a test drops is a script's real run, not a NOSCRIPT answer.
func warm(t *testing.T, m *lock.Manager) {
	t.Helper()
	l, err := m.TryAcquire(context.Background(), "m", "warm-up")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestAcquireWithLostReplyLeavesNoGhost: the first run of the acquire script
// took the lock and its reply was lost. Before the fix go-redis ran it
// again, the second run found the key taken (by itself) and reported
// ErrNotAcquired, and nobody held the key for a whole TTL.
func TestAcquireWithLostReplyLeavesNoGhost(t *testing.T) {
	d, rdb, admin := dropperClient(t)
	m := lock.NewManager(rdb, lock.WithTTL(time.Minute))
	ctx := context.Background()
	warm(t, m)
	d.DropReplies("bid_lock:m:ghost", 1)
	l, err := m.TryAcquire(ctx, "m", "ghost")
	if d.Dropped() != 1 {
		t.Fatalf("dropped %d replies, want 1", d.Dropped())
	}
	if err == nil {
		// A lock whose reply was lost may still be handed over, if the
		// Manager can prove it is the one that took it.
		if v, _ := admin.Get(ctx, l.Key()).Result(); v != l.Holder() {
			t.Fatalf("acquired, but the key holds %q, not %q", v, l.Holder())
		}
		return
	}
	if errors.Is(err, lock.ErrNotAcquired) {
		t.Fatalf("TryAcquire after a lost reply: %v: the lock's own first run was taken for another holder", err)
	}
	// An error: the key must not stay behind, held by nobody.
	wait.Until(t, 2*time.Second, "no ghost lock", func() bool {
		return admin.Exists(ctx, "bid_lock:m:ghost").Val() == 0
	})

	if _, err := m.TryAcquire(ctx, "m", "ghost"); err != nil {
		t.Fatalf("a second acquisition after the lost reply: %v", err)
	}
}

// TestReleaseWithLostReplyIsNotALoss: the release deleted the key and its
// reply was lost. Before the fix the retried release found no key and
// reported ErrLockLost for a lock that was never lost.
func TestReleaseWithLostReplyIsNotALoss(t *testing.T) {
	d, rdb, admin := dropperClient(t)
	m := lock.NewManager(rdb, lock.WithTTL(time.Minute))
	ctx := context.Background()
	warm(t, m)
	l, err := m.TryAcquire(ctx, "m", "release")
	if err != nil {
		t.Fatal(err)
	}
	d.DropReplies(l.Holder(), 1) // the release script carries the holder
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release after a lost reply: %v, want nil", err)
	}
	if d.Dropped() != 1 {
		t.Fatalf("dropped %d replies, want 1", d.Dropped())
	}
	if admin.Exists(ctx, l.Key()).Val() != 0 {
		t.Fatal("the key is still there")
	}
	if got := m.Metrics().Lost; got != 0 {
		t.Fatalf("Lost = %d, want 0", got)
	}
}
