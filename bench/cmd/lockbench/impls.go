package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/lock"
)

// Every implementation locks the same key string that bidder's lock uses for
// the posting ("bid_lock:bench:<posting>"), with the same 30s lease, so the
// per-cycle key building and the server's key sizes are equal for all.
const (
	marketplace = "bench"
	leaseTTL    = lock.DefaultTTL
)

var keys = lock.Keys{Prefix: lock.DefaultKeyPrefix}

// cycleFunc takes and releases the lock of one fresh posting.
type cycleFunc func(ctx context.Context, posting string) error

// impl is one lock implementation under test. setup gets that
// implementation's own go-redis client.
type impl struct {
	name  string
	setup func(rdb *redis.Client) cycleFunc
	// sent are the commands the client itself sends. INFO commandstats
	// also counts the redis.call()s inside a script (whose time is part of
	// the EVALSHA's), so only these add up to the server's execution time.
	sent []string
}

var allImpls = []impl{
	{"bidder", setupBidder, []string{"evalsha", "eval"}},
	{"raw", setupRaw, []string{"set", "evalsha", "eval"}},
	{"redislock", setupRedislock, []string{"evalsha", "eval"}},
	{"redsync", setupRedsync, []string{"set", "evalsha", "eval"}},
	// Diagnostic, not run by default: bidder's acquire script from plain
	// go-redis, without the lock package around it.
	{"raw+fence", setupRawFence, []string{"evalsha", "eval"}},
}

// defaultImpls are the ones the issue compares.
const defaultImpls = "bidder,raw,redislock,redsync"

func implByName(name string) impl {
	for _, im := range allImpls {
		if im.name == name {
			return im
		}
	}
	panic("unknown implementation " + name)
}

// bidder: lock.Manager with default options (30s TTL, watchdog armed on every
// acquisition, fence counter INCR+PEXPIRE in the acquire script).
func setupBidder(rdb *redis.Client) cycleFunc {
	m := lock.NewManager(rdb)
	return func(ctx context.Context, posting string) error {
		l, err := m.TryAcquire(ctx, marketplace, posting)
		if err != nil {
			return err
		}
		return l.Release(ctx)
	}
}

// rawRelease is the usual compare-and-delete; redis.Script.Run sends EVALSHA
// and falls back to EVAL once.
var rawRelease = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)

var errNotAcquired = errors.New("not acquired")

// raw: SET key token PX 30000 NX, then the Lua compare-and-delete. No
// watchdog, no fencing token, no metrics: the floor for a safe lease lock.
func setupRaw(rdb *redis.Client) cycleFunc {
	ttlMs := leaseTTL.Milliseconds()
	return func(ctx context.Context, posting string) error {
		key := keys.Lock(marketplace, posting)
		token := strconv.FormatUint(rand.Uint64(), 16)
		set := redis.NewBoolCmd(ctx, "set", key, token, "px", ttlMs, "nx")
		if err := rdb.Process(ctx, set); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if !set.Val() {
			return fmt.Errorf("%w: %s", errNotAcquired, key)
		}
		n, err := rawRelease.Run(ctx, rdb, []string{key}, token).Int64()
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("raw: %s not ours at release", key)
		}
		return nil
	}
}

// fencedAcquire is a copy of lock/scripts/acquire.lua (unexported there):
// SET NX PX, then INCR of the (shared, never-expiring) fence counter: the
// lock package's acquire script.
var fencedAcquire = redis.NewScript(`if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then ttl = 1 end
return -ttl`)

// raw+fence: bidder's Redis work (acquire script with fencing token, then
// compare-and-delete) with none of the lock package's Go code (no ID
// checks, watchdog timers, context, metrics or holder tracking). bidder vs
// raw+fence is the cost of the package's client side; raw+fence vs
// redislock is the server-side cost of fencing.
func setupRawFence(rdb *redis.Client) cycleFunc {
	ttlMs := strconv.FormatInt(leaseTTL.Milliseconds(), 10)
	return func(ctx context.Context, posting string) error {
		key, fence := keys.Lock(marketplace, posting), keys.Fence(marketplace, posting)
		token := strconv.FormatUint(rand.Uint64(), 16)
		n, err := fencedAcquire.Run(ctx, rdb, []string{key, fence}, token, ttlMs).Int64()
		if err != nil {
			return err
		}
		if n <= 0 {
			return fmt.Errorf("%w: %s", errNotAcquired, key)
		}
		if n, err = rawRelease.Run(ctx, rdb, []string{key}, token).Int64(); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("raw+fence: %s not ours at release", key)
		}
		return nil
	}
}

// redislock: Obtain (a Lua script: SET NX PX, or re-take with the same token)
// with no retry strategy, then Release (Lua compare-and-delete).
func setupRedislock(rdb *redis.Client) cycleFunc {
	c := redislock.New(rdb)
	return func(ctx context.Context, posting string) error {
		l, err := c.Obtain(ctx, keys.Lock(marketplace, posting), leaseTTL, nil)
		if err != nil {
			return err
		}
		return l.Release(ctx)
	}
}

// redsync: one node (quorum 1), Tries(1) so a fresh key is never retried.
// Lock is SET NX PX from a goroutine per node; Unlock is EVALSHA of its
// compare-and-delete.
func setupRedsync(rdb *redis.Client) cycleFunc {
	rs := redsync.New(goredis.NewPool(rdb))
	return func(ctx context.Context, posting string) error {
		mu := rs.NewMutex(keys.Lock(marketplace, posting), redsync.WithExpiry(leaseTTL), redsync.WithTries(1))
		if err := mu.LockContext(ctx); err != nil {
			return err
		}
		ok, err := mu.UnlockContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("redsync: unlock reported not held")
		}
		return nil
	}
}

// newClient is the one go-redis configuration every implementation gets.
func newClient(addr string, poolSize int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:         addr,
		PoolSize:     poolSize,
		DialTimeout:  5 * time.Second,
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
	})
}
