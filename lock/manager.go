package lock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Manager hands out per-posting locks. It is safe for concurrent use; one per
// process is enough.
type Manager struct {
	rdb     redis.UniversalClient
	opts    options
	scripts scripts
	holder  string // "<hostname>:<pid>:"; a random part is added per lock
	// The scripts' constant argument, boxed once: converting it to an
	// interface value on every call would allocate on the hot path.
	ttlArg any
	log    *zap.Logger
	count  counters
	prom   *promMetrics

	mu   sync.Mutex
	held map[*Lock]struct{}
}

// NewManager returns a Manager using rdb. Out-of-range options are clamped to
// the documented bounds and logged.
func NewManager(rdb redis.UniversalClient, opts ...Option) *Manager {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	fixed := o.normalize()
	m := &Manager{
		rdb:     rdb,
		opts:    o,
		scripts: newScripts(),
		holder:  o.holderPrefix,
		log:     o.logger.Named("lock"),
		prom:    newPromMetrics(o.registerer),
		held:    map[*Lock]struct{}{},
	}
	if m.holder == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "unknown-host"
		}
		m.holder = host + ":" + strconv.Itoa(os.Getpid())
	}
	m.holder += ":"
	m.ttlArg = o.ttl.Milliseconds()
	for _, f := range fixed {
		m.log.Warn("lock option out of range", zap.String("fixed", f))
	}
	return m
}

// TTL returns the lease length in force.
func (m *Manager) TTL() time.Duration { return m.opts.ttl }

// Keys returns the key layout in force.
func (m *Manager) Keys() Keys { return m.opts.keys }

// Metrics returns a snapshot of this Manager's counters.
func (m *Manager) Metrics() Metrics { return m.count.snapshot() }

// Health pings Redis with the caller's ctx.
func (m *Manager) Health(ctx context.Context) error {
	if err := m.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("lock: redis ping: %w", err)
	}
	return nil
}

// TryAcquire takes the lock in one round trip, or returns ErrNotAcquired when
// someone else holds it.
func (m *Manager) TryAcquire(ctx context.Context, marketplaceID, postingID string) (*Lock, error) {
	return m.Acquire(ctx, marketplaceID, postingID, 0)
}

// Acquire retries with exponential backoff and full jitter until it holds
// the lock, wait has elapsed, or ctx ends. It returns within a few
// milliseconds of the deadline. When wait runs out the error is
// ErrNotAcquired wrapping context.DeadlineExceeded; when ctx ends first it
// wraps ctx's error. Redis errors are returned at once (go-redis has already
// retried the connection): the caller decides whether to try again.
func (m *Manager) Acquire(ctx context.Context, marketplaceID, postingID string, wait time.Duration) (*Lock, error) {
	if err := ValidateIDs(marketplaceID, postingID); err != nil {
		return nil, err
	}
	start := time.Now()
	deadline := start.Add(wait)
	key := m.opts.keys.Lock(marketplaceID, postingID)
	fence := m.opts.keys.Fence(marketplaceID, postingID)
	backoff := m.opts.retryMin
	for {
		l, heldFor, err := m.try(ctx, key, fence)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, m.finish(start, resultTimeout, fmt.Errorf("%w: %s: %w", ErrNotAcquired, key, context.Cause(ctx)))
		case err != nil:
			m.log.Warn("lock acquire failed", zap.String("key", key), zap.Error(err))
			return nil, m.finish(start, resultError, fmt.Errorf("lock: acquire %s: %w", key, err))
		case l != nil:
			l.marketplaceID, l.postingID = marketplaceID, postingID
			m.finish(start, resultAcquired, nil)
			l.start(ctx)
			return l, nil
		}
		remaining := time.Until(deadline)
		if wait <= 0 {
			return nil, m.finish(start, resultConflict, fmt.Errorf("%w: %s is held by another worker", ErrNotAcquired, key))
		}
		if remaining <= 0 {
			return nil, m.finish(start, resultTimeout, fmt.Errorf("%w: %s still held after waiting %s: %w", ErrNotAcquired, key, wait, context.DeadlineExceeded))
		}
		// Full jitter spreads waiters out; sleeping past the holder's expiry
		// or our own deadline would only add latency.
		sleep := time.Millisecond + rand.N(backoff)
		sleep = min(sleep, heldFor, remaining)
		backoff = min(backoff*2, m.opts.retryMax)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, m.finish(start, resultTimeout, fmt.Errorf("%w: %s: %w", ErrNotAcquired, key, context.Cause(ctx)))
		case <-t.C:
		}
	}
}

// try runs the acquire script once. It returns the lock, or how long the
// current holder's lease still runs.
func (m *Manager) try(ctx context.Context, key, fence string) (*Lock, time.Duration, error) {
	holder := m.newHolder()
	sent := time.Now()
	res, err := m.scripts.acquire.RunOnce(ctx, m.rdb, []string{key, fence}, holder, m.ttlArg).Int64()
	if err != nil {
		if !isReply(err) {
			// The script may have taken the key before the reply was lost.
			// Nobody will use this holder: free the key now rather than
			// leave it held by nobody for a TTL.
			m.releaseOrphan(ctx, key, holder)
		}
		return nil, 0, err
	}
	if res <= 0 {
		return nil, time.Duration(-res) * time.Millisecond, nil
	}
	return m.newLock(key, fence, holder, res, sent), 0, nil
}

// newHolder is a holder name no other acquisition has used:
// "<hostname>:<pid>:<random>".
func (m *Manager) newHolder() string {
	var buf [16]byte
	return m.holder + string(strconv.AppendUint(buf[:0], rand.Uint64(), 16))
}

func (m *Manager) newLock(key, fence, holder string, token int64, sent time.Time) *Lock {
	return &Lock{
		m:          m,
		key:        key,
		fenceKey:   fence,
		holder:     holder,
		token:      token,
		acquiredAt: sent,
		validUntil: sent.Add(m.opts.ttl),
	}
}

// releaseOrphan deletes key if holder has it, retrying through short
// network trouble: compare-and-delete of a holder nobody uses is safe to
// repeat.
func (m *Manager) releaseOrphan(ctx context.Context, key, holder string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(m.opts.ttl, 5*time.Second))
	defer cancel()
	for ctx.Err() == nil {
		if err := m.scripts.release.Run(ctx, m.rdb, []string{key}, holder).Err(); err == nil || isReply(err) {
			return
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// isReply reports whether err is an error reply from Redis (the command ran
// and was refused, or failed in its script), as opposed to a network or
// context error after which the command may or may not have run.
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.ErrClosed)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// finish records an Acquire outcome and passes err through.
func (m *Manager) finish(start time.Time, result string, err error) error {
	m.count.attempts.Add(1)
	m.prom.wait.Observe(time.Since(start).Seconds())
	switch result {
	case resultAcquired:
		m.count.successes.Add(1)
		m.prom.acquired.Inc()
	case resultConflict:
		m.count.conflicts.Add(1)
		m.prom.conflict.Inc()
	case resultTimeout:
		m.count.timeouts.Add(1)
		m.prom.timeout.Inc()
	default:
		m.count.redisErrors.Add(1)
		m.prom.failed.Inc()
	}
	return err
}

// WithLock runs fn while holding the lock and releases it afterwards, also
// when fn fails or panics. fn gets the lock's Context: it is cancelled if the
// lock is lost, and fn should stop its work then. If the lock was lost while
// fn ran, the returned error wraps ErrLockLost (joined with fn's error).
func (m *Manager) WithLock(ctx context.Context, marketplaceID, postingID string, wait time.Duration,
	fn func(ctx context.Context, l *Lock) error) (err error) {
	l, err := m.Acquire(ctx, marketplaceID, postingID, wait)
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.ttl)
		defer cancel()
		if rerr := l.Release(rctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	return fn(l.Context(), l)
}

// ReleaseAll releases every lock this Manager holds (for shutdown) and
// returns how many were still ours. Other instances' locks are never touched.
func (m *Manager) ReleaseAll(ctx context.Context) (int, error) {
	m.mu.Lock()
	locks := make([]*Lock, 0, len(m.held))
	for l := range m.held {
		locks = append(locks, l)
	}
	m.mu.Unlock()
	n := 0
	var errs []error
	for _, l := range locks {
		switch err := l.Release(ctx); {
		case err == nil:
			n++
		case errors.Is(err, ErrLockLost):
		default:
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// Held returns how many locks this Manager holds right now.
func (m *Manager) Held() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.held)
}

func (m *Manager) track(l *Lock) {
	m.mu.Lock()
	m.held[l] = struct{}{}
	m.mu.Unlock()
}

func (m *Manager) untrack(l *Lock) {
	m.mu.Lock()
	delete(m.held, l)
	m.mu.Unlock()
}
