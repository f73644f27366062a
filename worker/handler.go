package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// Marketplace is what the handler needs of one configured marketplace.
type Marketplace struct {
	Adapter marketplace.Adapter
	Rules   *rules.Engine
	Budget  *rules.Budget // nil: no bid budget
	// Accounts, when set, are the marketplace's accounts in agency mode:
	// they share its postings, and at most one of them bids on each (see
	// Account). Adapter, Rules and Budget are then the first account's,
	// filled in by NewBidHandler when left nil.
	Accounts []Account
	// Proposals writes the proposal when a language model does (see
	// worker/proposal); nil: the rules' template text is sent as it is.
	Proposals *Proposals
}

// Account is one account of a marketplace in agency mode: its own adapter
// (token), rules and bid budget. The decide step picks the account that
// bids (the first whose rules bid and whose budget this worker has not
// seen spent), the claim writes its name into the intent, and whoever
// finds that intent later asks that account whether the bid arrived. The
// posting's keys stay the marketplace's, so "never twice" holds across
// the accounts.
type Account struct {
	Adapter marketplace.Adapter // Account() names it, in the ledger too
	Rules   *rules.Engine
	Budget  *rules.Budget // nil: none; counted per account
}

// BudgetScope is what a bid budget, and the postings waiting for its
// windows, are counted under: the marketplace's ID, and in agency mode
// (account not empty) the account's name with it.
func BudgetScope(marketplaceID, account string) string {
	if account == "" {
		return marketplaceID
	}
	return marketplaceID + "/" + account
}

// ScopedBudget is one bid budget of a marketplace, with the account it
// belongs to ("": the marketplace has one account) and its scope.
type ScopedBudget struct {
	Account, Scope string
	Budget         *rules.Budget
}

// Budgets lists the bid budgets of marketplace id: its own, or in agency
// mode each account's that has one, in the accounts' order; none when no
// budget is configured.
func (m Marketplace) Budgets(id string) []ScopedBudget {
	if len(m.Accounts) == 0 {
		if m.Budget == nil {
			return nil
		}
		return []ScopedBudget{{Scope: BudgetScope(id, ""), Budget: m.Budget}}
	}
	var out []ScopedBudget
	for _, ac := range m.Accounts {
		if ac.Budget != nil && ac.Adapter != nil {
			name := ac.Adapter.Account()
			out = append(out, ScopedBudget{Account: name, Scope: BudgetScope(id, name), Budget: ac.Budget})
		}
	}
	return out
}

// Proposals is a marketplace's proposal writer and the store that keeps
// what it wrote, so every attempt at a posting sends the first text.
type Proposals struct {
	Writer proposal.Writer
	Store  *proposal.Store
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

	enqueuer enqueuer // continuations of tasks waiting for a budget window
	// spent remembers, per account budget, until when this worker saw it
	// spent, so the decide step picks another account (agency mode). A
	// hint only: the budget's own script decides.
	spent       sync.Map // budget scope -> time.Time
	resultsMode ResultsMode
	history     *history.Recorder // nil: none
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

// WithEnqueuer lets a task that waits for its bid-budget window end and be
// continued by a task scheduled for the window's start (asynq shows it as
// scheduled, which it is, not as a failing retry). Without one it retries
// at the window's start instead.
func WithEnqueuer(c enqueuer) HandlerOption { return func(h *BidHandler) { h.enqueuer = c } }

// WithTaskResults says how a finished task records its decision as its
// asynq result (default ResultsInScript; always ResultsByWriter with a
// hash-tagged ledger).
func WithTaskResults(m ResultsMode) HandlerOption { return func(h *BidHandler) { h.resultsMode = m } }

// WithHistory reports decisions, parks and stopped duplicates to r, for
// the status page's charts (default: none).
func WithHistory(r *history.Recorder) HandlerOption { return func(h *BidHandler) { h.history = r } }

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
	if led.HashTags() {
		// The task's hash is in its queue's slot ({bids}), never in the
		// posting's: a ledger script that set it would fail with CROSSSLOT
		// on every attempt, on Cluster, whatever the caller asked for.
		h.resultsMode = ResultsByWriter
	}
	h.markets = make(map[string]Marketplace, len(markets))
	for id, m := range markets {
		if len(m.Accounts) > 0 {
			var err error
			if m, err = agency(id, m); err != nil {
				return nil, err
			}
		}
		h.markets[id] = m
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

// agency checks a marketplace's accounts and fills in its first account's
// parts.
func agency(id string, m Marketplace) (Marketplace, error) {
	names := make(map[string]bool, len(m.Accounts))
	for i, ac := range m.Accounts {
		if ac.Adapter == nil || ac.Rules == nil {
			return m, fmt.Errorf("worker: marketplace %q: account %d: adapter and rules are required", id, i+1)
		}
		if ac.Adapter.ID() != id {
			return m, fmt.Errorf("worker: marketplace %q: account %d's adapter serves %q", id, i+1, ac.Adapter.ID())
		}
		name := ac.Adapter.Account()
		if name == "" || names[name] {
			return m, fmt.Errorf("worker: marketplace %q: account %d: names must be set and distinct, got %q", id, i+1, name)
		}
		names[name] = true
	}
	if m.Adapter == nil {
		m.Adapter, m.Rules, m.Budget = m.Accounts[0].Adapter, m.Accounts[0].Rules, m.Accounts[0].Budget
	}
	return m, nil
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
	a := h.newAttempt(ctx, t, mk, p)
	start := time.Now()
	if retried, limit := h.attempts(ctx); retried >= limit {
		// More counted ends than allowed without this handler seeing them:
		// asynq recovered the task after workers died running it. Park it
		// before it takes another worker down.
		err = a.park("attempts_exhausted",
			fmt.Errorf("the task's %d attempts ran out, some of them ended by a worker that stopped running it", retried))
	} else {
		err = a.endOfRoad(a.run())
	}
	h.metrics.bidDuration.WithLabelValues(p.MarketplaceID).Observe(time.Since(start).Seconds())
	return err
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
