// Package scanner turns marketplace postings into bid tasks: schedules, the
// scan task and its handler, a shared request pace, and metrics.
//
// # Slots and the Scheduler
//
// Each marketplace has a schedule: a 5-field cron spec (in UTC unless
// CRON_TZ= says otherwise), a descriptor such as @hourly, or "@every <whole
// seconds>". Time is cut into
// slots that every instance computes alike from the wall clock: for @every d
// the slot starts at a multiple of d since the Unix epoch, for cron at the
// most recent activation. The Scheduler (run it on every instance) enqueues
// one scan task per marketplace per slot with the task ID
// "scan:<marketplace>:<slot start, Unix seconds>" and a retention of the
// slot's length plus a clock-skew margin, so asynq accepts the first
// instance's enqueue and answers the others ErrTaskIDConflict, which is
// counted (bidder_scan_slots_total{result="duplicate"}), not an error.
// asynq's own Scheduler is not used: it enqueues per process and its @every
// counts from process start. On start only the current slot is enqueued;
// slots missed while nothing ran are not replayed (a scan from the cursor
// catches up on all of them at once).
//
// Schedules come from a ConfigProvider, re-read every reload interval and on
// Scheduler.Reload; changes are logged, and an invalid new spec is logged and
// the old schedule kept.
//
// # Scans and the cursor
//
// ScanHandler (asynq type TypeScan, queue worker.QueueScans) scans one
// marketplace under a short Redis lock per marketplace (a busy lock ends the
// task: the running scan covers the slot). It reads the cursor from
// "bid_scan_cursor:<marketplace>", pages through Adapter.Scan until caught
// up or the page bound, looks up each page's postings in the ledger in one
// round trip, enqueues a bid task (worker.NewBidTask, with retention) for
// each undecided one, and only then stores the page's next cursor, with a
// script that writes only while the lock is still held. So a crash re-scans
// a page and never skips one, and a scan that stalled past its lock cannot
// move the cursor under its successor. A cursor the marketplace refuses
// permanently is dropped with a warning once a scan from the start succeeds.
//
// # Pacing
//
// Requests to a marketplace are paced by a GCRA limiter in Redis shared by
// all instances (marketplaces limit per account). A 429 pauses that limiter
// for Retry-After, so every instance backs off. A scan waits for the limiter
// within a budget (WithWaitBudget); past it the scan ends successfully and
// the next slot continues from the cursor. 5xx and other transient failures
// end the task with an error for asynq to retry; the cursor stays put.
//
// docs/scanner.md has the operator's view.
package scanner
