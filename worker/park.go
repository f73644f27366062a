package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/marketplace"
)

// attempts returns how many counted ends the task has had (asynq's retry
// count: counted failures, and the times asynq recovered it from a worker
// that stopped running it) and how many it may have before its posting is
// parked.
func (h *BidHandler) attempts(ctx context.Context) (retried, limit int) {
	retried, _ = asynq.GetRetryCount(ctx)
	limit = h.maxRetry
	if m, ok := asynq.GetMaxRetry(ctx); ok && m < limit {
		limit = m // a task enqueued with a smaller limit (older scanners)
	}
	return retried, max(limit, 1)
}

// endOfRoad lets err through, unless it is the task's last counted failure:
// then the posting is parked, because no bid task may end (asynq archives
// it once its retries are spent) while its posting has neither a final
// record nor a visible, resumable state.
func (a *attempt) endOfRoad(err error) error {
	if err == nil || !IsFailure(err) || errors.Is(err, asynq.SkipRetry) {
		return err
	}
	if retried, limit := a.attempts(a.ctx); retried+1 < limit {
		return err
	}
	return a.park(failureClass(err), err)
}

// park parks the posting with rule and the error that led there. The task
// then ends: the posting waits in the ledger, counted and listed, for
// `bidder ledger resume`. If parking is impossible the task waits instead
// of ending.
func (a *attempt) park(rule string, cause error) error {
	mp, id := a.p.MarketplaceID, a.p.ID
	k := a.locks.Keys()
	err := a.ledger.Park(a.ctx, k.Lock(mp, id), k.Fence(mp, id), "", mp, id, rule, cause.Error())
	switch {
	case err == nil:
		a.metrics.parked.WithLabelValues(mp, rule).Inc()
		a.decided("parked", rule, 0, "")
		a.log.Warn("posting parked: its attempts ran out; `bidder ledger resume` brings it back",
			zap.String("rule", rule), zap.NamedError("last_error", cause))
		a.result.write(TaskResult{Decision: "parked", Rule: rule, Reason: cause.Error()})
		return nil
	case errors.Is(err, ledger.ErrDecided):
		return nil
	case errors.Is(err, ledger.ErrLocked):
		// Another worker is on it (a second copy of the task): it decides.
		return retryIn(a.busyDelay, false, err)
	}
	a.log.Error("cannot park the posting; the task waits instead", zap.Error(err), zap.NamedError("last_error", cause))
	return retryIn(a.waitDelay, false, fmt.Errorf("worker: park %s:%s: %w (after %w)", mp, id, err, cause))
}

// ParkReasons is the vocabulary of park reasons (bidder_postings_parked's
// reason label): failureClass's values, and attempts_exhausted for a task
// whose attempts ran out while workers died running it.
func ParkReasons() []string {
	return []string{"attempts_exhausted", "marketplace_transient", "marketplace_permanent", "marketplace_not_found",
		"marketplace_ambiguous", "redis", "ledger_corrupt", "timeout", "other"}
}

// failureClass names why an attempt failed, for the park's rule: a short,
// fixed vocabulary (it is a metric label).
func failureClass(err error) string {
	var me *marketplace.Error
	switch {
	case errors.As(err, &me):
		return "marketplace_" + errorClass(err)
	case errors.Is(err, ledger.ErrCorrupt):
		return "ledger_corrupt"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case isRedisReply(err), redisUnreachable(err):
		return "redis"
	}
	return "other"
}
