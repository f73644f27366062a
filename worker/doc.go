// Package worker is the bid pipeline: the asynq handler that turns a
// discovered posting into exactly one bid (or one recorded reason not to),
// its middleware, retry policy and metrics, and the asynq server that runs
// it.
//
// One bid task per posting, ID "bid:<marketplace>:<posting>". The handler:
//
//  1. decodes and validates the payload; anything undecodable is archived at
//     once (asynq.SkipRetry) with the reason, and counted;
//  2. takes the posting's lock (short wait). If another worker holds it, the
//     task is retried later without counting a failure: the holder finishes
//     and the retry finds the ledger final. Ending the task instead would
//     lose the posting if that holder then crashed;
//  3. runs the should-bid rules (worker/rules), then writes the decision to
//     the ledger under the fence: skipped (with the rule), dry_run, or the
//     intent to bid. There is no read first: every write refuses a final
//     record ("duplicate prevented: ledger", done) and an earlier attempt's
//     unresolved intent, which sends the worker to reconcile: once that
//     attempt must have settled (intent time + settle delay, by Redis'
//     clock), it asks the marketplace whether the bid exists; found ->
//     placed; not found -> the old intent is cleared and the decision
//     written again;
//  4. takes one bid from the distributed budget (after the intent, so
//     duplicates spend nothing; a spent budget clears the intent and waits);
//  5. checks the lock once more and places the bid with the deterministic
//     idempotency key and the fencing token, on the lock's Context;
//  6. maps the outcome: placed / already bid -> placed; ambiguous -> intent
//     kept, retried after the settle delay (reconciles first); rate limited
//     -> intent cleared, retried after Retry-After without counting a
//     failure; transient -> intent cleared, retried with backoff; closed,
//     not found -> failed (final); other permanent -> failed and archived;
//  7. releases the lock.
//
// A lost lock stops the pipeline before the bid; a stale writer is refused
// by the ledger's fence. The marketplace's idempotency key and fencing token
// are the last layers, for marketplaces that honour them.
package worker
