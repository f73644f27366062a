// Package worker is the bid pipeline: the asynq handler that turns a
// discovered posting into exactly one bid (or one recorded reason not to),
// its middleware, retry policy and metrics, and the asynq server that runs
// it.
//
// One bid task per posting, ID "bid:<marketplace>:<posting>". The handler
// reads as four steps:
//
//  1. decide: the should-bid rules (worker/rules), which need nothing from
//     Redis; for a bid, whatever the adapter needs before it can send at
//     once (marketplace.Preparer: Freelancer's account lookup).
//  2. claim: one ledger script checks the record, takes the posting's lock
//     and a fencing token, and records the decision. A skip (or dry run) is
//     final there and holds no lock. A bid holds the lock and an intent. A
//     final record means done ("duplicate prevented: ledger"); another
//     worker's lock means retry later (uncounted); another attempt's intent
//     means a bid may exist: wait until none of its requests can be in
//     flight (the intent says when), then ask the marketplace (FindBid):
//     found, it is recorded as placed; not found, this attempt takes the
//     intent over and goes on.
//  3. send: take one bid from the distributed budget (counted once per
//     posting and window), check the lock and the send window (the bid must
//     leave within a third of the lease of the claim, which is what lets an
//     intent say when it has settled) and place the bid with the
//     deterministic idempotency key and the fencing token, on the lock's
//     Context.
//  4. settle: one ledger script records what the answer proves and releases
//     the lock: placed / already bid -> placed; closed, not found -> failed
//     (final); other permanent -> failed, and the task archived so someone
//     looks; rate limited, transient, unauthorized -> nothing was placed
//     (undecided again); ambiguous -> the intent stays, and the next attempt
//     reconciles.
//
// Waiting is not failing: a busy lock, settling, rate limits, a spent
// budget, ledger replicas short, Redis unreachable, a marketplace down or
// refusing the token, and a task this worker cannot run (unknown
// marketplace, newer payload version) retry without counting towards the
// posting's retries. Process-wide conditions are tracked in Conditions
// (/readyz, bidder_worker_paused).
//
// The end of the road is a state: after max_retry counted failures the
// posting is parked in the ledger (bidder_postings_parked; `bidder ledger
// resume` brings it back through reconciliation), and asynq never archives
// a bid task on its own (TaskMaxRetry), so no task ends while its posting
// has neither a final record nor a parked one.
package worker
