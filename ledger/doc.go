// Package ledger is the durable decision record of every posting: the
// second line of defence behind the lock, and the one that survives it.
//
// # States
//
//	             Discover                  Claim(skip | dry run)
//	(nothing) ──────────> undecided ─────────────────────────────> skipped | dry_run
//	                        │   ▲
//	           Claim(bid)   │   │ Settle(none): nothing was placed
//	                        ▼   │
//	                      intent ── Settle(placed | failed) ──────> placed | failed
//	                        │
//	         holder gone,   │ Claim by another: Pending ─ reconcile ─┬ found: Settle(placed, Replaces)
//	         window over    │                                        └ none:  Settle(intent, Replaces), bid
//	                        ▼
//	     Park (from undecided or intent) ──> parked ── Resume ──> what it was before
//
// placed, skipped, failed and dry_run are final: nothing changes them. An
// intent means a bid may exist: whoever finds another attempt's intent must
// ask the marketplace before deciding anything (Pending), and may only once
// none of that attempt's requests can still be in flight (Settling: the
// intent carries when that is). parked is a state an operator sees and ends
// (Resume); it is what a posting becomes instead of a task that ends with
// nothing recorded.
//
// # One round trip per step
//
// Claim checks the record, takes the posting's lock (lock.Attempt: the same
// key, holder and fence counter as the lock package's own acquire) and
// records the decision, in one script: a skip is final right there and
// holds no lock; a bid holds the lock and an intent. Settle records the
// outcome and releases the lock, in one script. So a skipped posting costs
// one round trip and a placed one two.
//
// # Fencing, and an intent belongs to an acquisition
//
// Every write is refused unless its writer still holds the posting's lock
// (the holder name, new per acquisition, is in the lock key) and no newer
// acquisition's token is in the record. An intent is recognised by the
// holder that wrote it, not by its token: a token can be handed out twice
// (a failover that lost the counter's last increments), a holder name
// cannot. Tokens come from the lock package's shared fence counter, which
// never expires, and a claim always takes one above the record's own, so a
// posting's tokens keep increasing for as long as its record lives.
//
// # Every script is safe to run twice
//
// A reply lost after a script ran makes go-redis send it again. Each script
// recognises its own earlier run by the holder it wrote and reports what
// that run did, so a retried claim or settle never becomes a conflict, a
// second decision or a false "duplicate".
//
// # Never lost
//
// Discover (the scanner, before enqueueing) stores each undecided posting's
// task payload in its record and lists it in the open index, in the
// posting's own Cluster slot; a final write removes both. The recovery pass
// takes open postings whose check is due (Due), and enqueues again those
// whose task no longer exists. Park moves a posting from the open index to
// the parked index, which Parked lists.
//
// # Layout
//
// One hash per posting, "bid_ledger:<marketplace>:<posting>" (with hash
// tags "bid_ledger:{<marketplace>:<posting>}", the slot of the lock's
// keys): s (state), h (holder), t (token), at (Redis time, ms), sa (intent:
// settled at), b/amt/cur (placed bid; dry run, with txt: the proposal),
// rule/why (skipped, failed),
// ps/pat/prule/pwhy (parked: from, at, rule, reason), d (undecided:
// discovered at). An undecided posting's task payload has a key of its own,
// "bid_ledger_payload:<marketplace>:<posting>", deleted with the decision
// (as a field it would turn the record's compact encoding into a hashtable
// for good). Indexes: sorted sets
// "bid_ledger_open:<marketplace>" and "bid_ledger_parked:<marketplace>",
// or one per Cluster slot with hash tags. Records expire after the
// retention (default 30 days): longer than any window in which a
// marketplace could show the same posting again, because a posting whose
// record expired would be decided anew.
package ledger
