package lock

import (
	"context"
	"time"
)

// Attempt is an acquisition that another package's Lua script makes, so
// that taking the lock and writing what it protects cost one round trip
// (the ledger's claim takes the posting's lock, advances its fence and
// records the decision in one script). The script must take the lock as
// acquire.lua does, SET Key Holder NX PX TTL, and hand out its token with
// INCR FenceKey; the Manager supplies the names and the holder, and once
// the script reports the lock taken, Held returns a Lock with the same
// watchdog, Context and Check as one from Acquire.
//
// An Attempt is for one script call (and go-redis' retries of it): the
// holder is new for each, so a script can tell its own earlier run from
// another acquisition.
type Attempt struct {
	m           *Manager
	key, fence  string
	holder      string
	mp, posting string
	sent        time.Time
}

// Prepare starts an Attempt on a posting. Call it immediately before
// sending the script: the lease is counted from this moment, which is
// earlier than Redis can have set the key.
func (m *Manager) Prepare(marketplaceID, postingID string) (*Attempt, error) {
	if err := ValidateIDs(marketplaceID, postingID); err != nil {
		return nil, err
	}
	return &Attempt{
		m:      m,
		key:    m.opts.keys.Lock(marketplaceID, postingID),
		fence:  m.opts.keys.Fence(marketplaceID, postingID),
		holder: m.newHolder(),
		mp:     marketplaceID, posting: postingID,
		sent: time.Now(),
	}, nil
}

// Key is the lock key the script must SET.
func (a *Attempt) Key() string { return a.key }

// FenceKey is the counter the script must INCR for the token.
func (a *Attempt) FenceKey() string { return a.fence }

// Holder is the value the script must SET: new for this Attempt.
func (a *Attempt) Holder() string { return a.holder }

// TTL is the lease the script must set (PX, in milliseconds).
func (a *Attempt) TTL() time.Duration { return a.m.opts.ttl }

// Keys is the key layout, for the script's other keys of the posting.
func (a *Attempt) Keys() Keys { return a.m.opts.keys }

// Held turns the Attempt into a held Lock: the script took the key with
// token. Its watchdog starts now; Context derives from ctx.
func (a *Attempt) Held(ctx context.Context, token int64) *Lock {
	l := a.m.newLock(a.key, a.fence, a.holder, token, a.sent)
	l.marketplaceID, l.postingID = a.mp, a.posting
	a.m.finish(a.sent, resultAcquired, nil)
	l.start(ctx)
	return l
}

// Busy records that the script found the lock held by someone else.
func (a *Attempt) Busy() { a.m.finish(a.sent, resultConflict, nil) }

// Failed records that the script could not be run (err is returned as is).
func (a *Attempt) Failed(err error) error { return a.m.finish(a.sent, resultError, err) }
