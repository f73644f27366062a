// Package chaos is a fault-injection harness that runs bidder as real OS
// processes on loopback and checks that no posting ever gets two bids.
//
// One run (Run) starts a redis-server (appendonly yes, appendfsync always,
// or no persistence at all), the sandbox marketplace in strict mode
// (idempotency off, duplicates accepted) with latency, errors, ambiguous
// bid answers and rate limits, two `bidder scanner` and N `bidder worker`
// processes. Every worker reaches Redis through its own in-process TCP
// Proxy, which can add latency, reset connections or blackhole traffic.
// While postings are published, a seeded injector SIGKILLs and restarts
// workers, scanners and Redis, SIGSTOPs workers past their lock TTL, copies
// bid tasks as asynq's redelivery would, and disturbs the proxies. Then
// publishing stops, the queues drain, every bidder process gets SIGTERM and
// the invariants are checked: no duplicate bid, every posting decided, one
// sandbox bid per placed record, no lock left, nothing archived without a
// permanent reason, every process exits 0. See docs/chaos.md.
//
// The sandbox runs as a re-executed harness binary (RunRole): the same
// marketplace/sandbox server and flags as `bidder sandbox`, plus SIGUSR1 to
// stop publishing, which that command does not offer.
package chaos
