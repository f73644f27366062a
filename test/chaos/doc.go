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
// bid tasks as asynq's redelivery would, and disturbs the proxies. Long
// faults (faults_long.go) freeze a worker until asynq itself hands its
// tasks over, put the marketplace in an outage (503, 401, flaky) through a
// harness-only switch, and stop a replica under ledger WAIT; a second
// sandbox and a second fleet of workers configured without it share the
// queue. Then publishing stops, the queues drain, parked postings are
// resumed with `bidder ledger resume`, every bidder process gets SIGTERM and
// the invariants are checked: no duplicate bid, every posting of every
// marketplace final, one sandbox bid per placed record, no lock left, no
// bid task archived without a permanent reason, what each long fault must
// hold, every process exits 0. See docs/chaos.md.
//
// The sandbox runs as a re-executed harness binary (RunRole): the same
// marketplace/sandbox server and flags as `bidder sandbox`, plus SIGUSR1 to
// stop publishing and the outage switch, which that command does not offer.
package chaos
