// Package ledger is the durable decision record of every posting: the
// second line of defence behind the lock, and the one that survives it.
//
// A record moves from nothing to intent (a bid may be in flight) to one
// final state: placed, skipped, failed or dry_run. Final records never
// change. Every write runs in one Lua script that also checks the posting's
// lock: the writer must still hold it (its holder name is in the lock key),
// and its token must not be older than the posting's fence counter or the
// record's own token; otherwise the write is refused with ErrStale. (The
// holder check covers a failover that lost the counter's last increment and
// so handed one token out twice.) So a worker that stalled past its lock's TTL can neither start a
// bid after a newer holder exists nor record over it.
//
// Layout: one hash per posting, "bid_ledger:<marketplace>:<posting>" (or
// "bid_ledger:{<marketplace>:<posting>}" with hash tags, the same slot as
// the lock's keys), fields s (state), t (token), at (Redis time, ms), w
// (worker), b/amt/cur (placed bid), rule/why (skipped, failed). Records
// expire after the retention (default 30 days): it must be longer than any
// window in which a marketplace could show the same posting again, because a
// posting whose record expired would be decided anew.
//
// The package depends on Redis only; the fence comes from any value with
// Token and FenceKey methods (a *lock.Lock).
package ledger
