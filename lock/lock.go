package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// errReleased is the cancellation cause of a lock's Context after Release.
var errReleased = errors.New("lock: released")

// Lock is one held lock. Its methods are safe for concurrent use.
type Lock struct {
	m                        *Manager
	key, fenceKey            string
	marketplaceID, postingID string
	holder                   string
	token                    int64
	acquiredAt               time.Time

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu         sync.Mutex
	validUntil time.Time // conservative: measured from when the renewal was sent
	ended      bool      // released or lost; held time already observed
	released   bool
	lostErr    error       // why the lock was lost, once it was
	renew      *time.Timer // fires every TTL/3 while held
	expiry     *time.Timer // fires when the lease may have run out unrenewed
}

// Key is the lock's Redis key.
func (l *Lock) Key() string { return l.key }

// FenceKey is the posting's fence counter key; a store that fences writes in
// Redis compares against it (GET FenceKey > token means a newer holder).
func (l *Lock) FenceKey() string { return l.fenceKey }

// MarketplaceID and PostingID name what the lock protects.
func (l *Lock) MarketplaceID() string { return l.marketplaceID }
func (l *Lock) PostingID() string     { return l.postingID }

// Holder is the unique holder name stored in the key:
// "<hostname>:<pid>:<random>", new for every acquisition.
func (l *Lock) Holder() string { return l.holder }

// Token is the fencing token: strictly greater than the token of every
// earlier acquisition of this posting's lock, across holders, releases and
// expiries.
func (l *Lock) Token() int64 { return l.token }

// Context is derived from the Acquire ctx and is cancelled on Release and as
// soon as the lock may no longer be ours. context.Cause then wraps
// ErrLockLost, or reports the release.
func (l *Lock) Context() context.Context { return l.ctx }

// Lost returns why the lock was lost (wrapping ErrLockLost), or nil while it
// is held or after a clean Release.
func (l *Lock) Lost() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lostErr
}

// start arms the watchdog: AfterFunc timers rather than a goroutine per
// lock, so a lock released before its first renewal (the common case) costs
// one timer and no goroutine. The expiry timer, which declares the loss even
// when a renewal hangs on a dead connection, is armed by the first renewal:
// the lease cannot run out before then.
func (l *Lock) start(parent context.Context) {
	l.ctx, l.cancel = context.WithCancelCause(parent)
	l.m.track(l)
	l.mu.Lock()
	l.renew = time.AfterFunc(l.m.opts.ttl/3, l.onRenew)
	l.mu.Unlock()
}

func (l *Lock) onRenew() {
	l.mu.Lock()
	if l.ended || l.released {
		l.mu.Unlock()
		return
	}
	if l.expiry == nil {
		l.expiry = time.AfterFunc(time.Until(l.validUntil), l.onExpiry)
	}
	deadline := l.validUntil
	l.mu.Unlock()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	err := l.refresh(ctx)
	cancel()
	interval := l.m.opts.ttl / 3
	if err != nil && !errors.Is(err, ErrLockLost) {
		// Redis trouble: try again soon; the expiry timer keeps counting
		// from the last confirmed renewal.
		interval /= 4
	}
	l.mu.Lock()
	if !l.ended && !l.released {
		l.renew.Reset(interval)
	}
	l.mu.Unlock()
}

func (l *Lock) onExpiry() {
	l.mu.Lock()
	if l.ended || l.released {
		l.mu.Unlock()
		return
	}
	if d := time.Until(l.validUntil); d > 0 { // a renewal raced the timer
		l.expiry.Reset(d)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.lose(fmt.Errorf("%w: %s: not renewed within its %s lease", ErrLockLost, l.key, l.m.opts.ttl))
}

// stopTimers disarms the watchdog; callers hold l.mu.
func (l *Lock) stopTimers() {
	l.renew.Stop()
	if l.expiry != nil {
		l.expiry.Stop()
	}
}

// Check returns nil only while the lock is held and its lease, as last
// confirmed by Redis, has not run out by the local monotonic clock (which
// keeps counting while a process is stopped). Call it immediately before an
// irreversible step: it cannot close the window (a stall may still come
// right after it), it narrows it to the step itself; fencing does the rest.
func (l *Lock) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.lostErr != nil:
		return l.lostErr
	case l.released:
		return fmt.Errorf("%w: %s: released", ErrLockLost, l.key)
	case !time.Now().Before(l.validUntil):
		return fmt.Errorf("%w: %s: lease ran out unconfirmed", ErrLockLost, l.key)
	}
	return nil
}

// Age is how long ago the acquisition was sent, by the monotonic clock. A
// step that must happen soon after the acquisition (the worker's bid, whose
// settle window is counted from it) checks it together with Check.
func (l *Lock) Age() time.Duration { return time.Since(l.acquiredAt) }

// Refresh extends the lease now (the watchdog does this on its own; Refresh
// is for callers that want a fresh full TTL before a long step). It returns
// ErrLockLost, and cancels Context, if the lock is no longer ours.
func (l *Lock) Refresh(ctx context.Context) error {
	return l.refresh(ctx)
}

func (l *Lock) refresh(ctx context.Context) error {
	l.mu.Lock()
	lost, released := l.lostErr, l.released
	l.mu.Unlock()
	if lost != nil {
		return lost
	}
	if released {
		return fmt.Errorf("%w: %s: already released", ErrLockLost, l.key)
	}
	sent := time.Now()
	ok, err := l.m.scripts.refresh.Run(ctx, l.m.rdb, []string{l.key}, l.holder, l.m.ttlArg).Int64()
	if err != nil {
		l.m.prom.renewError.Inc()
		l.m.log.Warn("lock renewal failed", zap.String("key", l.key), zap.Int64("token", l.token), zap.Error(err))
		return fmt.Errorf("lock: refresh %s: %w", l.key, err)
	}
	if ok != 1 {
		l.m.prom.renewLost.Inc()
		return l.lose(fmt.Errorf("%w: %s: expired or taken over", ErrLockLost, l.key))
	}
	l.m.prom.renewOK.Inc()
	l.mu.Lock()
	if v := sent.Add(l.m.opts.ttl); v.After(l.validUntil) && !l.ended {
		l.validUntil = v
		if l.expiry != nil {
			l.expiry.Reset(time.Until(v))
		}
	}
	l.mu.Unlock()
	return nil
}

// lose records the loss, cancels the Context with cause and counts it, once.
// It returns the first recorded loss.
func (l *Lock) lose(cause error) error {
	l.mu.Lock()
	if l.lostErr != nil {
		defer l.mu.Unlock()
		return l.lostErr
	}
	l.lostErr = cause
	l.stopTimers()
	first := !l.ended
	l.ended = true
	l.mu.Unlock()
	// Count before cancelling: whoever wakes on Context().Done() must see
	// the loss in Metrics.
	if first {
		l.m.count.lost.Add(1)
		l.m.prom.lost.Inc()
		l.m.prom.held.Observe(time.Since(l.acquiredAt).Seconds())
		l.m.log.Warn("lock lost", zap.String("key", l.key), zap.Int64("token", l.token), zap.Error(cause))
	}
	l.cancel(cause)
	return cause
}

// Release gives the lock up with a compare-and-delete: it never deletes a
// key that another holder owns. It returns ErrLockLost if the lock was no
// longer ours. Releasing twice is a no-op.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.released = true
	l.stopTimers()
	l.mu.Unlock()
	defer l.m.untrack(l)

	res, err := l.m.scripts.release.RunOnce(ctx, l.m.rdb, []string{l.key}, l.holder).Int64()
	if err != nil && !isReply(err) && ctx.Err() == nil {
		// The first release may have deleted the key before its reply was
		// lost. Ask again: "no key" now means that run deleted it (or the
		// lease ran out meanwhile, which changes nothing for a release).
		res, err = l.m.scripts.release.RunOnce(ctx, l.m.rdb, []string{l.key}, l.holder).Int64()
		if err == nil && res < 0 {
			res = 1
		}
	}
	if err == nil && res != 1 {
		return l.lose(fmt.Errorf("%w: %s: expired or taken over before release", ErrLockLost, l.key))
	}
	return l.end(err)
}

// MarkReleased ends the Lock without a round trip of its own, for a caller
// whose script deleted the key by compare-and-delete on Holder (the
// ledger's settle writes the outcome and releases in one script). The
// watchdog stops and Context is cancelled as after Release.
func (l *Lock) MarkReleased() {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return
	}
	l.released = true
	l.stopTimers()
	l.mu.Unlock()
	l.m.untrack(l)
	_ = l.end(nil)
}

// end observes the held time once, cancels Context, and reports a release
// error or an earlier loss.
func (l *Lock) end(releaseErr error) error {
	l.mu.Lock()
	first := !l.ended
	l.ended = true
	lost := l.lostErr
	l.mu.Unlock()
	if first {
		l.m.prom.held.Observe(time.Since(l.acquiredAt).Seconds())
	}
	l.cancel(errReleased)
	if releaseErr != nil {
		// The key expires by itself within the TTL.
		return fmt.Errorf("lock: release %s: %w", l.key, releaseErr)
	}
	// The watchdog may have given up (Redis unreachable) while the key was
	// still ours: the work under the lock was told to stop, so say so.
	return lost
}
