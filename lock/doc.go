// Package lock is the per-posting Redis bid lock: one holder at a time for a
// (marketplace, posting) pair, across every bidder instance.
//
// A lease lock alone cannot promise "never twice": a holder can stall past
// its TTL, and Redis can lose a write on failover. So every acquisition also
// hands out a fencing token, strictly increasing per posting, taken in the
// same Lua script as the lock itself. Whatever the lock protects (the ledger,
// the marketplace) should carry the token and refuse older ones.
//
// While held, a lock renews itself every TTL/3. Lock.Context is cancelled the
// moment the holder can no longer be sure it holds the lock: on Release, when
// a renewal finds the key gone or owned by someone else, or when Redis stayed
// unreachable until the TTL ran out. Work done under the lock should use that
// context, in the way etcd's concurrency.Session reports a lost lease.
//
// Keys (seed-compatible by default, so a legacy instance and this daemon
// exclude each other):
//
//	bid_lock:<marketplace>:<posting>        the lock; value = holder
//	bid_lock_fence                          the fence counter of the node
//
// The fence counter is shared: every posting's tokens come from one counter
// per Redis node (or per Cluster slot), which never expires. A posting's
// tokens therefore increase for as long as anything records one, and no key
// is left per posting (a per-posting counter with a retention could expire
// and hand a recorded token out again).
//
// With WithHashTags the posting part is wrapped in a Redis Cluster hash tag
// ({<marketplace>:<posting>}) so every key of one posting lives in one slot,
// and the fence counter of that slot is "bid_lock_fence:{<slot tag>}".
//
// A script whose reply is lost can be run twice by go-redis' retries;
// acquire and release are sent with those retries off, and the Manager
// resolves a lost reply itself (see scripts.go). A caller that takes the
// lock inside its own script (the ledger's claim) does so through an
// Attempt, which gives it the names and the holder and turns the result
// into a Lock with the same watchdog.
//
// The Manager fails closed: a lock is reported held only when Redis confirmed
// it, and Redis errors are returned (wrapped, counted, logged), never hidden.
package lock
