package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/history"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/worker/proposal"
	"github.com/bidder/bidder/worker/rules"
)

// attempt is one run of the pipeline on one posting: decide, claim, send,
// settle. It carries what every step needs.
type attempt struct {
	*BidHandler
	ctx    context.Context // the task's
	log    *zap.Logger
	mk     Marketplace
	acct   Account // the account that bids: mk's own, or the one decide picked
	p      marketplace.Posting
	result resultSink
}

func (h *BidHandler) newAttempt(ctx context.Context, t *asynq.Task, mk Marketplace, p marketplace.Posting) *attempt {
	taskID, _ := asynq.GetTaskID(ctx)
	return &attempt{
		BidHandler: h, ctx: ctx, mk: mk, p: p,
		acct:   Account{Adapter: mk.Adapter, Rules: mk.Rules, Budget: mk.Budget},
		log:    h.log.With(zap.String("marketplace", p.MarketplaceID), zap.String("posting", p.ID), zap.String("task_id", taskID)),
		result: h.resultSink(ctx, t),
	}
}

// run is the straight line.
func (a *attempt) run() error {
	d, err := a.decide()
	if err != nil {
		return err
	}
	c, l, err := a.claim(d)
	if l == nil || err != nil {
		return err // decided, waiting, in review, or refused: nothing held
	}
	if c.Approved != nil {
		// A reviewer approved this bid, perhaps edited: it goes out as
		// approved, whatever the rules say by now.
		d.Bid, d.Review = true, false
		d.Amount, d.Currency, d.Proposal = c.Approved.Amount, c.Approved.Currency, c.Approved.Proposal
	}
	defer a.releaseIfHeld(l)
	a.log = a.log.With(zap.Int64("token", l.Token()))
	sendBy := time.Now()
	if c.Outcome == ledger.Pending {
		done, err := a.reconcile(l, d, c.Earlier)
		if done || err != nil {
			return err
		}
		sendBy = time.Now() // the intent taken over counts from now
	}
	return a.send(l, d, sendBy.Add(a.sendWindow()))
}

// decide runs the rules (no Redis but the budget, which comes later) and
// whatever the adapter needs before a bid can go out at once.
func (a *attempt) decide() (rules.Decision, error) {
	d := a.choose()
	if !d.Bid {
		return d, nil
	}
	if a.mk.Proposals != nil {
		// Written once per posting and stored before the claim, so a
		// retry, a reconciliation or another worker sends byte for byte the
		// same text. The template needs no store: it is a function of the
		// posting and the config.
		text, err := a.propose(d)
		if err != nil {
			return d, err
		}
		d.Proposal = text
	}
	if a.acct.Rules.DryRun() {
		return d, nil
	}
	if pr, ok := a.acct.Adapter.(marketplace.Preparer); ok {
		if err := pr.PrepareBid(a.ctx); err != nil {
			return d, a.marketplaceFailed(a.ctx, a.p.MarketplaceID, "prepare_bid", err)
		}
	}
	return d, nil
}

// choose runs the rules, and in agency mode picks the account that bids:
// the first whose rules bid and whose budget this worker has not seen
// spent, else the first whose rules bid (its budget then says when to
// try again). A posting no account bids on is skipped for the first
// account's reason.
func (a *attempt) choose() rules.Decision {
	now := a.now()
	if len(a.mk.Accounts) == 0 {
		return a.acct.Rules.Decide(a.p, now)
	}
	var first rules.Decision
	bidder := -1
	for i, ac := range a.mk.Accounts {
		d := ac.Rules.Decide(a.p, now)
		if i == 0 {
			first = d
		}
		if !d.Bid {
			continue
		}
		if bidder < 0 {
			bidder, first = i, d
		}
		if !a.seenSpent(ac, now) {
			a.acct = ac
			return d
		}
	}
	a.acct = a.mk.Accounts[max(bidder, 0)]
	return first
}

// budgetScope is what an account's bid budget is counted under (see
// BudgetScope).
func (a *attempt) budgetScope(ac Account) string {
	return BudgetScope(a.p.MarketplaceID, a.accountNameOf(ac))
}

func (a *attempt) seenSpent(ac Account, now time.Time) bool {
	if ac.Budget == nil {
		return false
	}
	until, ok := a.spent.Load(a.budgetScope(ac))
	return ok && now.Before(until.(time.Time))
}

// accountName is what the claim stores as the bidding account: the chosen
// one's in agency mode, nothing for a marketplace with one account.
func (a *attempt) accountName() string {
	return a.accountNameOf(a.acct)
}

func (a *attempt) accountNameOf(ac Account) string {
	if len(a.mk.Accounts) == 0 {
		return ""
	}
	return ac.Adapter.Account()
}

// accountOf is the account an earlier intent named, to ask whether its bid
// arrived; an intent that names none is the first account's.
func (a *attempt) accountOf(name string) (Account, bool) {
	if len(a.mk.Accounts) == 0 || name == "" {
		return Account{Adapter: a.mk.Adapter, Rules: a.mk.Rules, Budget: a.mk.Budget}, true
	}
	for _, ac := range a.mk.Accounts {
		if ac.Adapter.Account() == name {
			return ac, true
		}
	}
	return Account{}, false
}

// otherBidder reports whether another account than the chosen one would
// bid on the posting and has a budget this worker has not seen spent.
func (a *attempt) otherBidder(now time.Time) bool {
	for _, ac := range a.mk.Accounts {
		if ac.Adapter.Account() != a.acct.Adapter.Account() && !a.seenSpent(ac, now) && ac.Rules.Decide(a.p, now).Bid {
			return true
		}
	}
	return false
}

// propose returns the posting's stored proposal, writing it first if no
// attempt has.
func (a *attempt) propose(d rules.Decision) (string, error) {
	pp, p := a.mk.Proposals, a.p
	pr, err := pp.Store.GetOrCreate(a.ctx, pp.Writer, proposal.Request{Posting: p, Amount: d.Amount, Currency: d.Currency, Template: d.Proposal})
	var we *proposal.WaitError
	switch {
	case err == nil:
		return pr.Text, nil
	case errors.As(err, &we):
		// The model failed or its token budget is spent, and on_error says
		// wait: nothing was stored, nothing counts.
		return "", a.wait(max(we.After, time.Second), err)
	case errors.Is(err, proposal.ErrStoreUnavailable):
		return "", a.redisFailed(fmt.Errorf("worker: proposal of %s:%s: %w", p.MarketplaceID, p.ID, err))
	}
	return "", fmt.Errorf("worker: proposal of %s:%s: %w", p.MarketplaceID, p.ID, err)
}

// claim takes the posting for d in one script. It returns the lock when the
// posting is now this attempt's to bid on (or to reconcile), and otherwise
// what the task should do.
func (a *attempt) claim(d rules.Decision) (ledger.Claim, *lock.Lock, error) {
	mp, id := a.p.MarketplaceID, a.p.ID
	at, err := a.locks.Prepare(mp, id)
	if err != nil {
		return ledger.Claim{}, nil, skipRetry(fmt.Errorf("%w: %w", ErrBadPayload, err))
	}
	ld := a.ledgerDecision(d)
	ld.Account = a.accountName() // also for an approval that turns a skip into a bid
	ld.ResultKey, ld.Result = a.result.inScript(resultOf(ld.State, ld.Rule, ld.Reason, "", ld.Amount, ld.Currency))
	c, err := a.ledger.Claim(a.ctx, at, mp, id, ld)
	if errors.Is(err, ledger.ErrReplicas) {
		// The intent is on the master only: a failover could lose it, so no
		// bid. Undo it and wait for the replicas.
		l := at.Held(a.ctx, c.Token)
		a.settleNothing(l)
		a.conditions.Set(CondReplicasShort, "", err.Error())
		return c, nil, a.wait(a.waitDelay, err)
	}
	if err != nil {
		return c, nil, a.redisFailed(at.Failed(fmt.Errorf("worker: claim %s:%s: %w", mp, id, err)))
	}
	// Redis answered and, for an intent, enough replicas had it.
	a.conditions.Clear(CondRedisDown, "")
	a.conditions.Clear(CondReplicasShort, "")
	switch c.Outcome {
	case ledger.Claimed, ledger.Pending:
		return c, at.Held(a.ctx, c.Token), nil
	case ledger.Recorded:
		a.metrics.bids.WithLabelValues(mp, string(c.State)).Inc()
		a.decided(string(c.State), ld.Rule, ld.Amount, ld.Currency)
		a.result.afterScript(resultOf(ld.State, ld.Rule, ld.Reason, "", ld.Amount, ld.Currency))
		a.log.Debug("decided", zap.String("state", string(c.State)), zap.String("rule", d.Rule), zap.String("reason", d.Reason))
		return c, nil, nil
	case ledger.Decided:
		a.prevented(LayerLedger)
		a.result.write(TaskResult{Decision: "decided_earlier", State: string(c.State)})
		return c, nil, nil
	case ledger.Busy:
		at.Busy()
		a.prevented(LayerLock)
		a.log.Debug("posting locked by another worker; retrying later")
		return c, nil, retryIn(min(a.busyDelay, c.RetryIn+time.Millisecond), false, fmt.Errorf("worker: %s:%s is locked by another worker", mp, id))
	case ledger.Settling:
		a.metrics.reconciliation.WithLabelValues("too_early").Inc()
		return c, nil, retryIn(c.RetryIn, false, fmt.Errorf("worker: earlier attempt on %s:%s still settling", mp, id))
	case ledger.InReview:
		// The task ends; the posting waits in the review queue, where an
		// approval enqueues its bid again and the deadline expires it.
		if ld.State == ledger.StateReview {
			a.metrics.bids.WithLabelValues(mp, string(ledger.StateReview)).Inc()
			a.decided(string(ledger.StateReview), ld.Reason, ld.Amount, ld.Currency)
		}
		a.log.Debug("posting in review", zap.Time("until", c.Until))
		a.result.write(TaskResult{Decision: "review", Reason: d.Reason, Amount: d.Amount, Currency: d.Currency, Until: c.Until})
		return c, nil, nil
	case ledger.Parked:
		a.log.Debug("posting is parked; a resume brings it back", zap.String("rule", c.Rule))
		a.result.write(TaskResult{Decision: "parked", Rule: c.Rule})
		return c, nil, nil
	}
	return c, nil, fmt.Errorf("worker: claim %s:%s: unexpected outcome %v", mp, id, c.Outcome)
}

func (a *attempt) ledgerDecision(d rules.Decision) ledger.Decision {
	switch {
	case !d.Bid:
		return ledger.Decision{State: ledger.StateSkipped, Rule: d.Rule, Reason: d.Reason}
	case a.acct.Rules.DryRun():
		return ledger.Decision{State: ledger.StateDryRun, Amount: d.Amount, Currency: d.Currency, Proposal: d.Proposal}
	case d.Review:
		return ledger.Decision{State: ledger.StateReview, Amount: d.Amount, Currency: d.Currency, Proposal: d.Proposal,
			Rule: d.Rule, Reason: d.Reason, ReviewUntil: a.now().Add(a.acct.Rules.ReviewDeadline()), Account: a.accountName()}
	}
	return ledger.Decision{State: ledger.StateIntent, Settle: a.sendWindow() + a.settle, Account: a.accountName()}
}

// reconcile resolves an intent an earlier attempt left, now that none of its
// requests can be in flight: the marketplace says whether that bid exists.
// done means the posting is decided; otherwise the intent is this
// attempt's and the bid goes out.
func (a *attempt) reconcile(l *lock.Lock, d rules.Decision, earlier *ledger.PendingError) (done bool, err error) {
	mp, id := a.p.MarketplaceID, a.p.ID
	asked, known := a.accountOf(earlier.Account)
	if !known {
		// An account no longer in this worker's config placed it, perhaps:
		// only that account can say, so the posting waits (visibly) for a
		// worker that has it.
		return true, a.cannotRun(mp, "unknown_account",
			fmt.Errorf("worker: reconcile %s:%s: the earlier intent is account %q's, which this worker does not have", mp, id, earlier.Account))
	}
	found, ok, err := asked.Adapter.FindBid(l.Context(), id)
	if err != nil {
		a.metrics.reconciliation.WithLabelValues("error").Inc()
		return true, a.marketplaceFailed(a.ctx, mp, "find_bid", fmt.Errorf("worker: reconcile %s:%s: %w", mp, id, err))
	}
	a.conditions.marketplaceOK(mp)
	if ok {
		a.metrics.reconciliation.WithLabelValues("found").Inc()
		a.log.Info("earlier attempt's bid found; recorded", zap.String("bid_id", found.ID))
		return true, a.settleAs(l, ledger.Outcome{
			State: ledger.StatePlaced, BidID: found.ID, Amount: found.Amount, Currency: found.Currency, Replaces: earlier.Holder,
		})
	}
	a.metrics.reconciliation.WithLabelValues("not_found").Inc()
	a.log.Info("earlier attempt placed no bid; going on", zap.String("earlier", earlier.Holder))
	o := a.ledgerDecision(d)
	if o.State == ledger.StateReview {
		// Nothing was placed, and a human is to decide: clear the earlier
		// intent; the next attempt's claim queues the posting for review.
		if err := a.ledger.Settle(a.ctx, l, mp, id, ledger.Outcome{State: ledger.StateNone, Replaces: earlier.Holder, Release: true}); err != nil {
			return true, a.writeFailed(err)
		}
		l.MarkReleased()
		return true, retryIn(10*time.Millisecond, false, fmt.Errorf("worker: %s:%s goes to review", mp, id))
	}
	if o.State != ledger.StateIntent {
		return true, a.settleAs(l, ledger.Outcome{
			State: o.State, Rule: o.Rule, Reason: o.Reason, Amount: o.Amount, Currency: o.Currency, Proposal: o.Proposal, Replaces: earlier.Holder,
		})
	}
	err = a.ledger.Settle(a.ctx, l, mp, id, ledger.Outcome{State: ledger.StateIntent, Replaces: earlier.Holder, Settle: o.Settle, Account: o.Account})
	if errors.Is(err, ledger.ErrReplicas) {
		a.settleNothing(l)
		a.conditions.Set(CondReplicasShort, "", err.Error())
		return true, a.wait(a.waitDelay, err)
	}
	if err != nil {
		return true, a.writeFailed(err)
	}
	return false, nil
}

// send spends the bid budget, checks the lock and the send window one last
// time, and places the bid; settleBid records what the answer proves.
func (a *attempt) send(l *lock.Lock, d rules.Decision, sendBy time.Time) error {
	mp, id := a.p.MarketplaceID, a.p.ID
	lctx := l.Context()
	if a.acct.Budget != nil {
		// After the claim, so duplicates stopped by the ledger spend nothing;
		// counted once per posting and window however often this runs.
		ok, retryAt, err := a.acct.Budget.Take(lctx, a.budgetScope(a.acct), id, a.now())
		if err != nil || !ok {
			a.settleNothing(l)
		}
		if err != nil {
			return a.redisFailed(fmt.Errorf("worker: %w", err))
		}
		if !ok {
			if len(a.mk.Accounts) > 0 {
				a.spent.Store(a.budgetScope(a.acct), retryAt)
				if a.otherBidder(a.now()) {
					// Undecided again: the next attempt picks another account.
					return retryIn(100*time.Millisecond, false,
						fmt.Errorf("worker: account %q's bid budget is spent until %s; another account bids", a.acct.Adapter.Account(), retryAt.UTC().Format(time.RFC3339)))
				}
			}
			return a.waitForBudget(retryAt)
		}
	}
	if a.hooks.BeforePlace != nil {
		a.hooks.BeforePlace(lctx, l)
	}
	if err := a.lastCheck(l, sendBy); err != nil {
		// Not sent: the intent says nothing was, for whoever comes next
		// (if the lock is lost, the next holder reconciles and finds none).
		a.prevented(LayerLock)
		a.log.Warn("not sending the bid", zap.Error(err))
		a.settleNothing(l)
		return retryIn(a.busyDelay, false, err)
	}
	bid := marketplace.Bid{
		Amount:         d.Amount,
		Currency:       d.Currency,
		Proposal:       d.Proposal,
		IdempotencyKey: marketplace.IdempotencyKey(mp, id, a.acct.Adapter.Account()),
		FencingToken:   l.Token(),
	}
	placed, err := a.acct.Adapter.PlaceBid(lctx, id, bid)
	if a.hooks.AfterPlace != nil {
		a.hooks.AfterPlace(lctx, l)
	}
	return a.settleBid(l, placed, err)
}

// lastCheck is the guard at the write: the lock must still be ours and the
// bid must leave within its send window.
func (a *attempt) lastCheck(l *lock.Lock, sendBy time.Time) error {
	if err := l.Check(); err != nil {
		return fmt.Errorf("worker: lock lost before the bid was sent: %w", err)
	}
	if late := time.Since(sendBy); late > 0 {
		return fmt.Errorf("worker: bid not sent within its %s send window of the claim (%s late)", a.sendWindow(), late.Round(time.Millisecond))
	}
	return nil
}

// settleBid records what PlaceBid's answer proves and releases the lock.
func (a *attempt) settleBid(l *lock.Lock, placed marketplace.PlacedBid, err error) error {
	mp := a.p.MarketplaceID
	class := errorClass(err)
	switch class {
	case "":
		a.conditions.marketplaceOK(mp)
		a.log.Debug("bid placed", zap.String("bid_id", placed.ID), zap.Float64("amount", placed.Amount))
		return a.settleAs(l, ledger.Outcome{State: ledger.StatePlaced, BidID: placed.ID, Amount: placed.Amount, Currency: placed.Currency})
	case "already_bid":
		existing, _ := marketplace.ExistingBid(err)
		a.prevented(LayerMarketplace)
		a.log.Warn("marketplace already had our bid; recorded it", zap.String("bid_id", existing.ID))
		return a.settleAs(l, ledger.Outcome{State: ledger.StatePlaced, BidID: existing.ID, Amount: existing.Amount, Currency: existing.Currency})
	}
	a.metrics.attempts.WithLabelValues(mp, class).Inc()
	switch class {
	case "ambiguous":
		// The intent stays: whoever comes next reconciles once the window
		// it carries has passed.
		a.log.Warn("bid outcome unknown; will reconcile", zap.Error(err))
		a.releaseIfHeld(l)
		return retryIn(a.sendWindow()+a.settle, false, err)
	case "rate_limited":
		a.settleNothing(l)
		after, _ := marketplace.RetryAfter(err)
		a.log.Debug("rate limited", zap.Duration("retry_after", after))
		return retryIn(max(after, time.Second), false, err)
	case "closed", "not_found":
		a.log.Debug("bid not possible", zap.String("reason", class))
		return a.settleAs(l, ledger.Outcome{State: ledger.StateFailed, Rule: class, Reason: err.Error()})
	case "permanent":
		// Our bid or config is wrong: a final record, and the task archived
		// so that someone looks.
		a.log.Error("bid rejected", zap.Error(err))
		if err := a.settleAs(l, ledger.Outcome{State: ledger.StateFailed, Rule: class, Reason: err.Error()}); err != nil {
			return err
		}
		return skipRetry(err)
	}
	// transient, unauthorized: nothing was placed.
	a.settleNothing(l)
	return a.marketplaceFailed(a.ctx, mp, "place_bid", fmt.Errorf("worker: %w", err))
}

// settleAs records o and releases the lock in one script.
func (a *attempt) settleAs(l *lock.Lock, o ledger.Outcome) error {
	// A bid the marketplace stored must be recorded even if the task's ctx
	// ended meanwhile; the fence keeps the write honest.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), DefaultWriteTimeout)
	defer cancel()
	o.Release = true
	if o.State == ledger.StatePlaced && o.Dims == "" {
		o.Dims = a.acct.Rules.Dims(a.p).Encode()
	}
	res := resultOf(o.State, o.Rule, o.Reason, o.BidID, o.Amount, o.Currency)
	o.ResultKey, o.Result = a.result.inScript(res)
	if err := a.ledger.Settle(wctx, l, a.p.MarketplaceID, a.p.ID, o); err != nil {
		return a.writeFailed(err)
	}
	l.MarkReleased()
	a.metrics.bids.WithLabelValues(a.p.MarketplaceID, string(o.State)).Inc()
	a.decided(string(o.State), o.Rule, o.Amount, o.Currency)
	a.result.afterScript(res)
	return nil
}

// decided reports a decision to the status page's history.
func (a *attempt) decided(state, rule string, amount float64, currency string) {
	a.history.Decided(a.p.MarketplaceID, history.Decision{
		Posting: a.p.ID, Title: a.p.Title, URL: a.p.URL, State: state, Amount: amount, Currency: currency, Rule: rule,
	})
}

// prevented counts a second attempt stopped at layer.
func (a *attempt) prevented(layer string) {
	a.metrics.DuplicatePrevented(layer)
	a.history.Count(a.p.MarketplaceID, "dup:"+layer, 1)
}

// settleNothing records that this attempt placed nothing (the posting is
// undecided again) and releases the lock. If it cannot, the intent stays
// and the next attempt reconciles: slower, never wrong.
func (a *attempt) settleNothing(l *lock.Lock) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), DefaultWriteTimeout)
	defer cancel()
	if err := a.ledger.Settle(wctx, l, a.p.MarketplaceID, a.p.ID, ledger.Outcome{State: ledger.StateNone, Release: true}); err != nil {
		a.log.Debug("could not record that nothing was placed; the next attempt reconciles", zap.Error(err))
		return
	}
	l.MarkReleased()
}

// releaseIfHeld gives the lock up if no settle did.
func (a *attempt) releaseIfHeld(l *lock.Lock) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), DefaultWriteTimeout)
	defer cancel()
	if err := l.Release(rctx); err != nil {
		a.log.Debug("lock release", zap.Error(err))
	}
}

// writeFailed turns a refused or failed ledger write into the task's result.
func (a *attempt) writeFailed(err error) error {
	switch {
	case errors.Is(err, ledger.ErrStale):
		a.prevented(LayerFence)
		a.log.Warn("stale lock holder: write refused by the fence", zap.Error(err))
		return retryIn(a.busyDelay, false, err)
	case errors.Is(err, ledger.ErrDecided):
		a.prevented(LayerLedger)
		a.result.write(TaskResult{Decision: "decided_earlier"})
		return nil
	case errors.Is(err, ledger.ErrPending):
		// Another attempt's intent appeared under our lock: only a failover
		// can do that. Start over, which reconciles it.
		return retryIn(a.busyDelay, false, err)
	}
	return a.redisFailed(fmt.Errorf("worker: %w", err))
}
