// Package sandbox is bidder's own marketplace: an in-memory HTTP server that
// implements the sandbox API, and the marketplace.Adapter that talks to it.
// It exists for demos, tests, load runs and, above all, fault runs that prove
// bidder never bids twice on one posting.
//
// The HTTP contract is the project note shared/notes/sandbox-api.md ("Sandbox marketplace
// HTTP API, v1"). Other implementations of it are used for acceptance runs, so
// the server and the adapter keep to it exactly. The one extension, additive
// and documented in docs/sandbox.md ("Extensions (additive)"), is outcomes:
// bids decided by a seeded rule (Decide) DecideAfter after they were placed,
// served by GET /v1/bids/status, and POST /v1/bids/{id}/retract
// (outcomes.go); the adapter implements marketplace.StatusReader and
// marketplace.Retracter on them.
//
// # Server
//
// NewServer builds a Server (an http.Handler) from a ServerConfig, which can
// be filled from command-line flags with ServerConfig.AddFlags. Postings are
// published with Publish or, at a steady rate, by Generate; their content is
// a pure function of the seed and the posting's sequence number, so a run
// repeats. Cursors encode sequence numbers, so paging never skips or repeats
// a posting however publishing interleaves.
//
// Modes, fixed per run:
//   - idempotency on|off: whether a repeated Idempotency-Key gets the
//     original bid back (200) or is ignored like on most real marketplaces;
//   - duplicates reject|accept: whether a second bid by one account on one
//     posting gets 409 or is created and counted as a duplicate.
//
// The strictest run is idempotency=off, duplicates=accept: then only bidder
// itself can keep a posting from getting two bids, and GET /v1/stats shows
// whether it did.
//
// Faults: latency (fixed or a range), error_rate (503 before doing anything),
// rate_limit_rate (429 with Retry-After), ambiguous_rate (the bid is stored,
// then the answer is a 504 or a dropped connection) and close-after (postings
// stop taking bids that long after publication). Every random choice comes
// from a source seeded by ServerConfig.Seed. GET /v1/stats is exempt from
// latency and faults: it is how a run is judged.
//
// # Adapter
//
// New is a marketplace.Factory registered under AdapterName. It maps every
// answer onto the marketplace error classes; notably a bid POST whose answer
// was lost, malformed or a 5xx other than the contract's "nothing done" 503
// is marketplace.ErrAmbiguous, to be reconciled with FindBid, and it never
// retries a bid itself (it even stops net/http from silently resending one).
package sandbox
