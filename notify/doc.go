// Package notify delivers the ledger's notification outbox (see
// ledger.WithNotifications) to webhooks, Slack and Telegram, each event to
// each channel once.
//
// The ledger's scripts append an event to an outbox list in the script that
// makes the change it reports, so an event exists exactly when its change
// does. Here a Sweeper moves outbox entries into asynq tasks (type
// TypeSend, queue Queue), one per (channel, event) with the task ID
// "notify:<channel>:<event id>", and only then pops them: a sweep that
// crashes in between enqueues again and asynq answers ErrTaskIDConflict.
// The Handler sends a task under a per-(channel, event) delivery key in
// Redis: "sent" is never sent again; "attempt" on entry means a previous
// run may have sent and crashed before marking. An idempotent channel (the
// webhook, deduplicated by the receiver on its Idempotency-Key) sends again;
// the others do not, and count bidder_notify_ambiguous_total: at most once.
// Retries, backoff and archive-on-exhaustion are asynq's, so an undelivered
// notification is visible in the monitoring UI and can be run again there.
//
// What notify may import: ledger, lock, internal/*. Not worker or cmd: the
// worker's retry policy learns about notify's retry delays through the
// RetryAfter/CountsAsFailure methods of its errors, not an import.
package notify
