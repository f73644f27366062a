package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/worker/rules"
)

// Marketplace is what the handler needs of one configured marketplace.
type Marketplace struct {
	Adapter marketplace.Adapter
	Rules   *rules.Engine
	Budget  *rules.Budget // nil: no bid budget
}

// Hooks are fault-injection points for tests and the chaos harness: each
// runs, if set, at its step of the pipeline, with the lock's Context.
type Hooks struct {
	BeforeIntent func(ctx context.Context, l *lock.Lock)
	BeforePlace  func(ctx context.Context, l *lock.Lock)
	AfterPlace   func(ctx context.Context, l *lock.Lock)
}

// Defaults of the handler's options.
const (
	DefaultLockWait     = 2 * time.Second
	DefaultBusyDelay    = 5 * time.Second
	DefaultSettleDelay  = 15 * time.Second
	DefaultWriteTimeout = 5 * time.Second
)

// BidHandler processes bid tasks. Safe for concurrent use.
type BidHandler struct {
	locks   *lock.Manager
	ledger  *ledger.Ledger
	markets map[string]Marketplace
	metrics *Metrics
	log     *zap.Logger
	now     func() time.Time
	hooks   Hooks

	lockWait  time.Duration
	busyDelay time.Duration
	settle    time.Duration
}

// HandlerOption configures a BidHandler.
type HandlerOption func(*BidHandler)

// WithLockWait sets how long a task waits for a posting's lock (default 2s)
// before it is retried later.
func WithLockWait(d time.Duration) HandlerOption { return func(h *BidHandler) { h.lockWait = d } }

// WithBusyDelay sets the retry delay of a task whose posting another worker
// holds (default 5s).
func WithBusyDelay(d time.Duration) HandlerOption { return func(h *BidHandler) { h.busyDelay = d } }

// WithSettleDelay sets how long after an intent an earlier attempt is taken
// to have settled, so that reconciliation can trust "no bid found" (default
// 15s). It must exceed the adapter's request timeout plus the marketplace's
// processing time: a request still in flight would otherwise be missed.
func WithSettleDelay(d time.Duration) HandlerOption { return func(h *BidHandler) { h.settle = d } }

// WithMetrics shares a Metrics value (default: unregistered metrics).
func WithMetrics(m *Metrics) HandlerOption { return func(h *BidHandler) { h.metrics = m } }

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) HandlerOption { return func(h *BidHandler) { h.log = l } }

// WithClock replaces time.Now for the rules (max posting age, budgets).
func WithClock(now func() time.Time) HandlerOption { return func(h *BidHandler) { h.now = now } }

// WithHooks installs fault-injection hooks.
func WithHooks(hk Hooks) HandlerOption { return func(h *BidHandler) { h.hooks = hk } }

// NewBidHandler returns the bid task handler.
func NewBidHandler(locks *lock.Manager, led *ledger.Ledger, markets map[string]Marketplace, opts ...HandlerOption) (*BidHandler, error) {
	h := &BidHandler{
		locks: locks, ledger: led, markets: markets,
		log: zap.NewNop(), now: time.Now,
		lockWait: DefaultLockWait, busyDelay: DefaultBusyDelay, settle: DefaultSettleDelay,
	}
	for _, o := range opts {
		o(h)
	}
	if h.metrics == nil {
		h.metrics = NewMetrics(nil)
	}
	if locks == nil || led == nil {
		return nil, errors.New("worker: bid handler needs a lock manager and a ledger")
	}
	for id, m := range markets {
		if m.Adapter == nil || m.Rules == nil {
			return nil, fmt.Errorf("worker: marketplace %q: adapter and rules are required", id)
		}
		if m.Adapter.ID() != id {
			return nil, fmt.Errorf("worker: marketplace %q: adapter serves %q", id, m.Adapter.ID())
		}
		h.metrics.forMarketplace(id)
	}
	return h, nil
}

// ProcessTask implements asynq.Handler.
func (h *BidHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := DecodeBidPayload(t.Payload())
	if err != nil {
		h.metrics.invalid.WithLabelValues("payload").Inc()
		return skipRetry(err)
	}
	mk, ok := h.markets[p.MarketplaceID]
	if !ok {
		h.metrics.invalid.WithLabelValues("unknown_marketplace").Inc()
		return skipRetry(fmt.Errorf("%w: marketplace %q is not configured on this worker", ErrBadPayload, p.MarketplaceID))
	}
	taskID, _ := asynq.GetTaskID(ctx)
	log := h.log.With(zap.String("marketplace", p.MarketplaceID), zap.String("posting", p.ID), zap.String("task_id", taskID))
	start := time.Now()
	err = h.process(ctx, log, mk, p)
	h.metrics.bidDuration.WithLabelValues(p.MarketplaceID).Observe(time.Since(start).Seconds())
	return err
}

func (h *BidHandler) process(ctx context.Context, log *zap.Logger, mk Marketplace, p marketplace.Posting) error {
	mp, id := p.MarketplaceID, p.ID
	l, err := h.locks.Acquire(ctx, mp, id, h.lockWait)
	if err != nil {
		if errors.Is(err, lock.ErrNotAcquired) && ctx.Err() == nil {
			h.metrics.DuplicatePrevented(LayerLock)
			log.Debug("posting locked by another worker; retrying later")
			return retryIn(h.busyDelay, false, err)
		}
		return fmt.Errorf("worker: lock %s:%s: %w", mp, id, err)
	}
	log = log.With(zap.Int64("token", l.Token()))
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultWriteTimeout)
		defer cancel()
		if err := l.Release(rctx); err != nil {
			log.Info("lock release", zap.Error(err))
		}
	}()
	lctx := l.Context()

	// No read first: every ledger write refuses a final record (ErrDecided)
	// and an earlier attempt's unresolved intent (ErrPending), which saves a
	// round trip on every posting.
	now := h.now()
	d := mk.Rules.Decide(p, now)
	for round := 0; ; round++ {
		err := h.decide(ctx, lctx, log, mk, p, l, d, now)
		var pending *ledger.PendingError
		if !errors.As(err, &pending) || round > 0 {
			return err
		}
		done, err := h.reconcile(lctx, log, mk, p, l, pending)
		if done || err != nil {
			return err
		}
		// The earlier attempt placed nothing: clear its intent, decide again.
		if err := h.ledger.ClearIntent(lctx, l, mp, id); err != nil {
			return h.writeFailed(log, err)
		}
	}
}

// decide records d, or places the bid it calls for.
func (h *BidHandler) decide(ctx, lctx context.Context, log *zap.Logger, mk Marketplace, p marketplace.Posting, l *lock.Lock, d rules.Decision, now time.Time) error {
	mp, id := p.MarketplaceID, p.ID
	if !d.Bid {
		if err := h.ledger.Skipped(lctx, l, mp, id, d.Rule, d.Reason); err != nil {
			return h.writeFailed(log, err)
		}
		h.metrics.bids.WithLabelValues(mp, OutcomeSkipped).Inc()
		log.Info("skipped", zap.String("rule", d.Rule), zap.String("reason", d.Reason))
		return nil
	}
	if mk.Rules.DryRun() {
		if err := h.ledger.DryRun(lctx, l, mp, id, l.Holder(), d.Amount, d.Currency); err != nil {
			return h.writeFailed(log, err)
		}
		h.metrics.bids.WithLabelValues(mp, OutcomeDryRun).Inc()
		log.Info("would bid (dry run)", zap.Float64("amount", d.Amount), zap.String("currency", d.Currency))
		return nil
	}
	if h.hooks.BeforeIntent != nil {
		h.hooks.BeforeIntent(lctx, l)
	}
	if err := h.ledger.Intent(lctx, l, mp, id, l.Holder()); err != nil {
		return h.writeFailed(log, err)
	}
	if mk.Budget != nil {
		// After the intent, so duplicates stopped by the ledger spend nothing.
		ok, retryAt, err := mk.Budget.Take(lctx, mp, now)
		if err != nil || !ok {
			h.clearIntent(lctx, log, l, mp, id)
		}
		if err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		if !ok {
			log.Info("bid budget spent; waiting for the next window", zap.Time("retry_at", retryAt))
			return retryIn(retryAt.Sub(now), false, fmt.Errorf("worker: bid budget of %s spent", mp))
		}
	}
	if h.hooks.BeforePlace != nil {
		h.hooks.BeforePlace(lctx, l)
	}
	if err := l.Check(); err != nil {
		// The intent stays: the next attempt reconciles, and finds nothing.
		h.metrics.DuplicatePrevented(LayerLock)
		log.Warn("lock lost before the bid was sent; not sending", zap.Error(err))
		return retryIn(h.busyDelay, false, err)
	}
	bid := marketplace.Bid{
		Amount:         d.Amount,
		Currency:       d.Currency,
		Proposal:       d.Proposal,
		IdempotencyKey: marketplace.IdempotencyKey(mp, id, mk.Adapter.Account()),
		FencingToken:   l.Token(),
	}
	placed, err := mk.Adapter.PlaceBid(lctx, id, bid)
	if h.hooks.AfterPlace != nil {
		h.hooks.AfterPlace(lctx, l)
	}
	return h.outcome(ctx, log, mk, p, l, bid, placed, err)
}

// outcome records what PlaceBid's answer proves. Writes use a context that
// outlives the lock's: a bid the marketplace stored must be recorded even if
// the lock was lost meanwhile, and the fence keeps that write honest.
func (h *BidHandler) outcome(ctx context.Context, log *zap.Logger, mk Marketplace, p marketplace.Posting, l *lock.Lock,
	bid marketplace.Bid, placed marketplace.PlacedBid, err error) error {
	mp, id := p.MarketplaceID, p.ID
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultWriteTimeout)
	defer cancel()
	class := errorClass(err)
	switch class {
	case "":
		if err := h.ledger.Placed(wctx, l, mp, id, l.Holder(), placed.ID, placed.Amount, placed.Currency); err != nil {
			return h.writeFailed(log, err)
		}
		h.metrics.bids.WithLabelValues(mp, OutcomePlaced).Inc()
		log.Info("bid placed", zap.String("bid_id", placed.ID), zap.Float64("amount", placed.Amount))
		return nil
	case "already_bid":
		existing, _ := marketplace.ExistingBid(err)
		h.metrics.DuplicatePrevented(LayerMarketplace)
		if err := h.ledger.Placed(wctx, l, mp, id, l.Holder(), existing.ID, existing.Amount, existing.Currency); err != nil {
			return h.writeFailed(log, err)
		}
		h.metrics.bids.WithLabelValues(mp, OutcomePlaced).Inc()
		log.Warn("marketplace already had our bid; recorded it", zap.String("bid_id", existing.ID))
		return nil
	}
	h.metrics.attempts.WithLabelValues(mp, class).Inc()
	switch class {
	case "ambiguous":
		log.Warn("bid outcome unknown; will reconcile", zap.Error(err))
		return retryIn(h.settle, false, err)
	case "rate_limited":
		h.clearIntent(wctx, log, l, mp, id)
		after, _ := marketplace.RetryAfter(err)
		log.Info("rate limited", zap.Duration("retry_after", after))
		return retryIn(max(after, time.Second), false, err)
	case "transient", "unauthorized":
		h.clearIntent(wctx, log, l, mp, id)
		log.Warn("bid not placed; retrying", zap.Error(err))
		return fmt.Errorf("worker: %w", err)
	case "closed", "not_found":
		if err := h.ledger.Failed(wctx, l, mp, id, class, err.Error()); err != nil {
			return h.writeFailed(log, err)
		}
		h.metrics.bids.WithLabelValues(mp, OutcomeFailed).Inc()
		log.Info("bid not possible", zap.String("reason", class))
		return nil
	default: // permanent: our bid or config is wrong; archive so someone looks
		if err := h.ledger.Failed(wctx, l, mp, id, class, err.Error()); err != nil {
			return h.writeFailed(log, err)
		}
		h.metrics.bids.WithLabelValues(mp, OutcomeFailed).Inc()
		log.Error("bid rejected", zap.Error(err))
		return skipRetry(err)
	}
}

// errorClass maps an adapter error onto the pipeline's cases. An error that
// is not a classified marketplace error is treated as ambiguous: a bid may
// have been sent, so only reconciliation may decide.
func errorClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, marketplace.ErrAlreadyBid):
		return "already_bid"
	case errors.Is(err, marketplace.ErrAmbiguous):
		return "ambiguous"
	case errors.Is(err, marketplace.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, marketplace.ErrTransient):
		return "transient"
	case errors.Is(err, marketplace.ErrPostingClosed):
		return "closed"
	case errors.Is(err, marketplace.ErrPermanent):
		switch marketplace.Reason(err) {
		case "unauthorized":
			return "unauthorized" // an account problem, not this posting's
		case "not_found":
			return "not_found"
		}
		return "permanent"
	}
	return "ambiguous"
}

// reconcile resolves an intent an earlier attempt left. done means the
// posting is now decided.
func (h *BidHandler) reconcile(ctx context.Context, log *zap.Logger, mk Marketplace, p marketplace.Posting, l *lock.Lock, rec *ledger.PendingError) (done bool, err error) {
	now, err := h.ledger.Now(ctx)
	if err != nil {
		return false, fmt.Errorf("worker: %w", err)
	}
	if wait := rec.At.Add(h.settle).Sub(now); wait > 0 {
		// The earlier attempt's request may still be in flight; a "not
		// found" now would prove nothing.
		h.metrics.reconciliation.WithLabelValues("too_early").Inc()
		return false, retryIn(wait, false, fmt.Errorf("worker: earlier attempt on %s:%s still settling", p.MarketplaceID, p.ID))
	}
	found, ok, err := mk.Adapter.FindBid(ctx, p.ID)
	if err != nil {
		h.metrics.reconciliation.WithLabelValues("error").Inc()
		if after, limited := marketplace.RetryAfter(err); limited {
			return false, retryIn(after, false, err)
		}
		return false, fmt.Errorf("worker: reconcile %s:%s: %w", p.MarketplaceID, p.ID, err)
	}
	if !ok {
		h.metrics.reconciliation.WithLabelValues("not_found").Inc()
		log.Info("earlier attempt placed no bid; going on", zap.Int64("earlier_token", rec.Token))
		return false, nil
	}
	h.metrics.reconciliation.WithLabelValues("found").Inc()
	if err := h.ledger.Placed(ctx, l, p.MarketplaceID, p.ID, l.Holder(), found.ID, found.Amount, found.Currency); err != nil {
		return true, h.writeFailed(log, err)
	}
	h.metrics.bids.WithLabelValues(p.MarketplaceID, OutcomePlaced).Inc()
	log.Info("earlier attempt's bid found; recorded", zap.String("bid_id", found.ID))
	return true, nil
}

func (h *BidHandler) clearIntent(ctx context.Context, log *zap.Logger, l *lock.Lock, mp, id string) {
	if err := h.ledger.ClearIntent(ctx, l, mp, id); err != nil {
		// Harmless: the next attempt reconciles instead.
		log.Info("could not clear intent", zap.Error(err))
	}
}

// writeFailed turns a refused or failed ledger write into the task's result.
func (h *BidHandler) writeFailed(log *zap.Logger, err error) error {
	switch {
	case errors.Is(err, ledger.ErrStale):
		h.metrics.DuplicatePrevented(LayerFence)
		log.Warn("stale lock holder: write refused by the fence", zap.Error(err))
		return retryIn(h.busyDelay, false, err)
	case errors.Is(err, ledger.ErrDecided):
		h.metrics.DuplicatePrevented(LayerLedger)
		return nil
	case errors.Is(err, ledger.ErrPending):
		return err // the caller reconciles
	}
	return fmt.Errorf("worker: %w", err)
}
