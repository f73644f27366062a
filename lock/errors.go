package lock

import "errors"

var (
	// ErrNotAcquired: someone else holds the lock (TryAcquire), or the wait
	// ran out (Acquire; then the error also wraps context.DeadlineExceeded
	// or the caller's ctx error).
	ErrNotAcquired = errors.New("lock: not acquired")
	// ErrLockLost: the lock is no longer ours (expired, taken over, or
	// Redis could not confirm it in time). Nothing was deleted or extended.
	ErrLockLost = errors.New("lock: lost")
	// ErrInvalidID: a marketplace or posting ID that cannot form a safe key.
	ErrInvalidID = errors.New("lock: invalid id")
)
