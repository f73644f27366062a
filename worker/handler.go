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
	BeforePlace func(ctx context.Context, l *lock.Lock)
	AfterPlace  func(ctx context.Context, l *lock.Lock)
}

// Defaults of the handler's options.
const (
	DefaultBusyDelay    = 5 * time.Second
	DefaultSettleDelay  = 15 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	// DefaultWaitDelay is how long a task waits for a condition that is not
	// its own failure (Redis unreachable, replicas short, the marketplace
	// down or refusing our token, a task this worker cannot run).
	DefaultWaitDelay = 30 * time.Second
)

// BidHandler processes bid tasks. Safe for concurrent use.
type BidHandler struct {
	locks      *lock.Manager
	ledger     *ledger.Ledger
	markets    map[string]Marketplace
	metrics    *Metrics
	conditions *Conditions
	log        *zap.Logger
	now        func() time.Time
	hooks      Hooks

	busyDelay time.Duration
	settle    time.Duration
	waitDelay time.Duration
	maxRetry  int
}

// HandlerOption configures a BidHandler.
type HandlerOption func(*BidHandler)

// WithBusyDelay sets the retry delay of a task whose posting another worker
// holds (default 5s).
func WithBusyDelay(d time.Duration) HandlerOption { return func(h *BidHandler) { h.busyDelay = d } }

// WithSettleDelay sets how long after the bid of an intent was sent (at the
// latest) its outcome is taken to have settled, so that reconciliation can
// trust "no bid found" (default 15s). It must exceed the adapter's request
// timeout plus the marketplace's processing time: a request still in
// flight would otherwise be missed.
func WithSettleDelay(d time.Duration) HandlerOption { return func(h *BidHandler) { h.settle = d } }

// WithWaitDelay sets the retry delay of a task that waits for a condition
// rather than failing (default 30s).
func WithWaitDelay(d time.Duration) HandlerOption { return func(h *BidHandler) { h.waitDelay = d } }

// WithMaxRetry sets how many counted failures a posting survives before it
// is parked (default DefaultMaxRetry). Waiting never counts.
func WithMaxRetry(n int) HandlerOption { return func(h *BidHandler) { h.maxRetry = n } }

// WithMetrics shares a Metrics value (default: unregistered metrics).
func WithMetrics(m *Metrics) HandlerOption { return func(h *BidHandler) { h.metrics = m } }

// WithConditions shares the process's wait conditions (default: its own),
// which /readyz and the status page read.
func WithConditions(c *Conditions) HandlerOption { return func(h *BidHandler) { h.conditions = c } }

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
		busyDelay: DefaultBusyDelay, settle: DefaultSettleDelay, waitDelay: DefaultWaitDelay,
		maxRetry: DefaultMaxRetry,
	}
	for _, o := range opts {
		o(h)
	}
	if h.metrics == nil {
		h.metrics = NewMetrics(nil)
	}
	if h.conditions == nil {
		h.conditions = NewConditions(nil)
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
		h.conditions.Track(id)
	}
	return h, nil
}

// sendWindow bounds the time from a claim to the bid's first byte: a bid
// not on its way by then is not sent. With it, an intent can say when none
// of its requests can still be in flight (the claim, plus this window, plus
// the settle delay), which is what another worker finding the intent waits
// for. A third of the lease: the bid always goes out before the first
// renewal is due.
func (h *BidHandler) sendWindow() time.Duration { return h.locks.TTL() / 3 }

// ProcessTask implements asynq.Handler.
func (h *BidHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := DecodeBidPayload(t.Payload())
	if errors.Is(err, ErrNewerPayload) {
		// A newer bidder wrote it: leave it for a worker that reads it.
		return h.cannotRun(p.MarketplaceID, "payload_version", err)
	}
	if err != nil {
		h.metrics.invalid.WithLabelValues("payload").Inc()
		return skipRetry(err)
	}
	mk, ok := h.markets[p.MarketplaceID]
	if !ok {
		// A rollout adding a marketplace, or fleets with different configs
		// on one Redis: another worker can run it. Archiving it here would
		// lose the posting.
		return h.cannotRun(p.MarketplaceID, "unknown_marketplace",
			fmt.Errorf("worker: marketplace %q is not configured on this worker", p.MarketplaceID))
	}
	taskID, _ := asynq.GetTaskID(ctx)
	log := h.log.With(zap.String("marketplace", p.MarketplaceID), zap.String("posting", p.ID), zap.String("task_id", taskID))
	start := time.Now()
	if retried, limit := h.attempts(ctx); retried >= limit {
		// More counted ends than allowed without this handler seeing them:
		// asynq recovered the task after workers died running it. Park it
		// before it takes another worker down.
		err = h.park(ctx, log, p, "attempts_exhausted",
			fmt.Errorf("the task's %d attempts ran out, some of them ended by a worker that stopped running it", retried))
	} else {
		err = h.endOfRoad(ctx, log, p, h.process(ctx, log, mk, p))
	}
	h.metrics.bidDuration.WithLabelValues(p.MarketplaceID).Observe(time.Since(start).Seconds())
	return err
}

// process is one attempt at a posting: decide, claim, send, settle.
func (h *BidHandler) process(ctx context.Context, log *zap.Logger, mk Marketplace, p marketplace.Posting) error {
	d, err := h.decide(ctx, mk, p)
	if err != nil {
		return err
	}
	c, l, err := h.claim(ctx, log, mk, p, d)
	if l == nil || err != nil {
		return err // decided, waiting, or refused: nothing held
	}
	defer h.releaseIfHeld(ctx, log, l)
	log = log.With(zap.Int64("token", l.Token()))
	sendBy := time.Now()
	if c.Outcome == ledger.Pending {
		done, err := h.reconcile(ctx, log, mk, p, l, d, c.Earlier)
		if done || err != nil {
			return err
		}
		sendBy = time.Now() // the intent taken over counts from now
	}
	return h.send(ctx, log, mk, p, l, d, sendBy.Add(h.sendWindow()))
}

// decide runs the rules (no Redis but the budget, which comes later) and
// whatever the adapter needs before a bid can go out at once.
func (h *BidHandler) decide(ctx context.Context, mk Marketplace, p marketplace.Posting) (rules.Decision, error) {
	d := mk.Rules.Decide(p, h.now())
	if !d.Bid || mk.Rules.DryRun() {
		return d, nil
	}
	if pr, ok := mk.Adapter.(marketplace.Preparer); ok {
		if err := pr.PrepareBid(ctx); err != nil {
			return d, h.marketplaceFailed(p.MarketplaceID, "prepare_bid", err)
		}
	}
	return d, nil
}

// claim takes the posting for d in one script. It returns the lock when the
// posting is now this attempt's to bid on (or to reconcile), and otherwise
// what the task should do.
func (h *BidHandler) claim(ctx context.Context, log *zap.Logger, mk Marketplace, p marketplace.Posting, d rules.Decision) (ledger.Claim, *lock.Lock, error) {
	mp, id := p.MarketplaceID, p.ID
	a, err := h.locks.Prepare(mp, id)
	if err != nil {
		return ledger.Claim{}, nil, skipRetry(fmt.Errorf("%w: %w", ErrBadPayload, err))
	}
	c, err := h.ledger.Claim(ctx, a, mp, id, h.ledgerDecision(mk, d))
	if errors.Is(err, ledger.ErrReplicas) {
		// The intent is on the master only: a failover could lose it, so no
		// bid. Undo it and wait for the replicas.
		l := a.Held(ctx, c.Token)
		h.settleNothing(ctx, log, l, p)
		h.conditions.Set(CondReplicasShort, "", err.Error())
		return c, nil, h.wait(h.waitDelay, err)
	}
	if err != nil {
		return c, nil, h.redisFailed(a.Failed(fmt.Errorf("worker: claim %s:%s: %w", mp, id, err)))
	}
	// Redis answered and, for an intent, enough replicas had it.
	h.conditions.Clear(CondRedisDown, "")
	h.conditions.Clear(CondReplicasShort, "")
	switch c.Outcome {
	case ledger.Claimed, ledger.Pending:
		return c, a.Held(ctx, c.Token), nil
	case ledger.Recorded:
		h.metrics.bids.WithLabelValues(mp, string(c.State)).Inc()
		log.Debug("decided", zap.String("state", string(c.State)), zap.String("rule", d.Rule), zap.String("reason", d.Reason))
		return c, nil, nil
	case ledger.Decided:
		h.metrics.DuplicatePrevented(LayerLedger)
		return c, nil, nil
	case ledger.Busy:
		a.Busy()
		h.metrics.DuplicatePrevented(LayerLock)
		log.Debug("posting locked by another worker; retrying later")
		return c, nil, retryIn(min(h.busyDelay, c.RetryIn+time.Millisecond), false, fmt.Errorf("worker: %s:%s is locked by another worker", mp, id))
	case ledger.Settling:
		h.metrics.reconciliation.WithLabelValues("too_early").Inc()
		return c, nil, retryIn(c.RetryIn, false, fmt.Errorf("worker: earlier attempt on %s:%s still settling", mp, id))
	case ledger.Parked:
		log.Debug("posting is parked; a resume brings it back", zap.String("rule", c.Rule))
		return c, nil, nil
	}
	return c, nil, fmt.Errorf("worker: claim %s:%s: unexpected outcome %v", mp, id, c.Outcome)
}

func (h *BidHandler) ledgerDecision(mk Marketplace, d rules.Decision) ledger.Decision {
	switch {
	case !d.Bid:
		return ledger.Decision{State: ledger.StateSkipped, Rule: d.Rule, Reason: d.Reason}
	case mk.Rules.DryRun():
		return ledger.Decision{State: ledger.StateDryRun, Amount: d.Amount, Currency: d.Currency}
	}
	return ledger.Decision{State: ledger.StateIntent, Settle: h.sendWindow() + h.settle}
}

// reconcile resolves an intent an earlier attempt left, now that none of its
// requests can be in flight: the marketplace says whether that bid exists.
// done means the posting is decided; otherwise the intent is this
// attempt's and the bid goes out.
func (h *BidHandler) reconcile(ctx context.Context, log *zap.Logger, mk Marketplace, p marketplace.Posting, l *lock.Lock,
	d rules.Decision, earlier *ledger.PendingError) (done bool, err error) {
	mp, id := p.MarketplaceID, p.ID
	found, ok, err := mk.Adapter.FindBid(l.Context(), id)
	if err != nil {
		h.metrics.reconciliation.WithLabelValues("error").Inc()
		return true, h.marketplaceFailed(mp, "find_bid", fmt.Errorf("worker: reconcile %s:%s: %w", mp, id, err))
	}
	h.conditions.marketplaceOK(mp)
	if ok {
		h.metrics.reconciliation.WithLabelValues("found").Inc()
		log.Info("earlier attempt's bid found; recorded", zap.String("bid_id", found.ID))
		return true, h.settleAs(ctx, log, l, p, ledger.Outcome{
			State: ledger.StatePlaced, BidID: found.ID, Amount: found.Amount, Currency: found.Currency, Replaces: earlier.Holder,
		})
	}
	h.metrics.reconciliation.WithLabelValues("not_found").Inc()
	log.Info("earlier attempt placed no bid; going on", zap.String("earlier", earlier.Holder))
	o := h.ledgerDecision(mk, d)
	if o.State != ledger.StateIntent {
		return true, h.settleAs(ctx, log, l, p, ledger.Outcome{
			State: o.State, Rule: o.Rule, Reason: o.Reason, Amount: o.Amount, Currency: o.Currency, Replaces: earlier.Holder,
		})
	}
	err = h.ledger.Settle(ctx, l, mp, id, ledger.Outcome{State: ledger.StateIntent, Replaces: earlier.Holder, Settle: o.Settle})
	if errors.Is(err, ledger.ErrReplicas) {
		h.settleNothing(ctx, log, l, p)
		h.conditions.Set(CondReplicasShort, "", err.Error())
		return true, h.wait(h.waitDelay, err)
	}
	if err != nil {
		return true, h.writeFailed(log, err)
	}
	return false, nil
}

// send spends the bid budget, checks the lock and the send window one last
// time, and places the bid; settle records what the answer proves.
func (h *BidHandler) send(ctx context.Context, log *zap.Logger, mk Marketplace, p marketplace.Posting, l *lock.Lock, d rules.Decision, sendBy time.Time) error {
	mp, id := p.MarketplaceID, p.ID
	lctx := l.Context()
	if mk.Budget != nil {
		// After the claim, so duplicates stopped by the ledger spend nothing;
		// counted once per posting and window however often this runs.
		ok, retryAt, err := mk.Budget.Take(lctx, mp, id, h.now())
		if err != nil || !ok {
			h.settleNothing(ctx, log, l, p)
		}
		if err != nil {
			return h.redisFailed(fmt.Errorf("worker: %w", err))
		}
		if !ok {
			log.Debug("bid budget spent; waiting for the next window", zap.Time("retry_at", retryAt))
			return retryIn(retryAt.Sub(h.now()), false, fmt.Errorf("worker: bid budget of %s spent until %s", mp, retryAt.UTC().Format(time.RFC3339)))
		}
	}
	if h.hooks.BeforePlace != nil {
		h.hooks.BeforePlace(lctx, l)
	}
	if err := h.lastCheck(l, sendBy); err != nil {
		// Not sent: the intent says nothing was, for whoever comes next
		// (if the lock is lost, the next holder reconciles and finds none).
		h.metrics.DuplicatePrevented(LayerLock)
		log.Warn("not sending the bid", zap.Error(err))
		h.settleNothing(ctx, log, l, p)
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
	return h.settleBid(ctx, log, p, l, placed, err)
}

// lastCheck is the guard at the write: the lock must still be ours and the
// bid must leave within its send window.
func (h *BidHandler) lastCheck(l *lock.Lock, sendBy time.Time) error {
	if err := l.Check(); err != nil {
		return fmt.Errorf("worker: lock lost before the bid was sent: %w", err)
	}
	if late := time.Since(sendBy); late > 0 {
		return fmt.Errorf("worker: bid not sent within its %s send window of the claim (%s late)", h.sendWindow(), late.Round(time.Millisecond))
	}
	return nil
}

// settleBid records what PlaceBid's answer proves and releases the lock.
func (h *BidHandler) settleBid(ctx context.Context, log *zap.Logger, p marketplace.Posting, l *lock.Lock, placed marketplace.PlacedBid, err error) error {
	mp := p.MarketplaceID
	class := errorClass(err)
	switch class {
	case "":
		h.conditions.marketplaceOK(mp)
		log.Debug("bid placed", zap.String("bid_id", placed.ID), zap.Float64("amount", placed.Amount))
		return h.settleAs(ctx, log, l, p, ledger.Outcome{State: ledger.StatePlaced, BidID: placed.ID, Amount: placed.Amount, Currency: placed.Currency})
	case "already_bid":
		existing, _ := marketplace.ExistingBid(err)
		h.metrics.DuplicatePrevented(LayerMarketplace)
		log.Warn("marketplace already had our bid; recorded it", zap.String("bid_id", existing.ID))
		return h.settleAs(ctx, log, l, p, ledger.Outcome{State: ledger.StatePlaced, BidID: existing.ID, Amount: existing.Amount, Currency: existing.Currency})
	}
	h.metrics.attempts.WithLabelValues(mp, class).Inc()
	switch class {
	case "ambiguous":
		// The intent stays: whoever comes next reconciles once the window
		// it carries has passed.
		log.Warn("bid outcome unknown; will reconcile", zap.Error(err))
		h.releaseIfHeld(ctx, log, l)
		return retryIn(h.sendWindow()+h.settle, false, err)
	case "rate_limited":
		h.settleNothing(ctx, log, l, p)
		after, _ := marketplace.RetryAfter(err)
		log.Debug("rate limited", zap.Duration("retry_after", after))
		return retryIn(max(after, time.Second), false, err)
	case "closed", "not_found":
		log.Debug("bid not possible", zap.String("reason", class))
		return h.settleAs(ctx, log, l, p, ledger.Outcome{State: ledger.StateFailed, Rule: class, Reason: err.Error()})
	case "permanent":
		// Our bid or config is wrong: a final record, and the task archived
		// so that someone looks.
		log.Error("bid rejected", zap.Error(err))
		if err := h.settleAs(ctx, log, l, p, ledger.Outcome{State: ledger.StateFailed, Rule: class, Reason: err.Error()}); err != nil {
			return err
		}
		return skipRetry(err)
	}
	// transient, unauthorized: nothing was placed.
	h.settleNothing(ctx, log, l, p)
	return h.marketplaceFailed(mp, "place_bid", fmt.Errorf("worker: %w", err))
}

// settleAs records o and releases the lock in one script.
func (h *BidHandler) settleAs(ctx context.Context, log *zap.Logger, l *lock.Lock, p marketplace.Posting, o ledger.Outcome) error {
	// A bid the marketplace stored must be recorded even if the task's ctx
	// ended meanwhile; the fence keeps the write honest.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultWriteTimeout)
	defer cancel()
	o.Release = true
	err := h.ledger.Settle(wctx, l, p.MarketplaceID, p.ID, o)
	if err != nil {
		return h.writeFailed(log, err)
	}
	l.MarkReleased()
	h.metrics.bids.WithLabelValues(p.MarketplaceID, string(o.State)).Inc()
	return nil
}

// settleNothing records that this attempt placed nothing (the posting is
// undecided again) and releases the lock. If it cannot, the intent stays
// and the next attempt reconciles: slower, never wrong.
func (h *BidHandler) settleNothing(ctx context.Context, log *zap.Logger, l *lock.Lock, p marketplace.Posting) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultWriteTimeout)
	defer cancel()
	if err := h.ledger.Settle(wctx, l, p.MarketplaceID, p.ID, ledger.Outcome{State: ledger.StateNone, Release: true}); err != nil {
		log.Debug("could not record that nothing was placed; the next attempt reconciles", zap.Error(err))
		return
	}
	l.MarkReleased()
}

// releaseIfHeld gives the lock up if no settle did.
func (h *BidHandler) releaseIfHeld(ctx context.Context, log *zap.Logger, l *lock.Lock) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultWriteTimeout)
	defer cancel()
	if err := l.Release(rctx); err != nil {
		log.Debug("lock release", zap.Error(err))
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
		// Another attempt's intent appeared under our lock: only a failover
		// can do that. Start over, which reconciles it.
		return retryIn(h.busyDelay, false, err)
	}
	return h.redisFailed(fmt.Errorf("worker: %w", err))
}
