package scanner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/history"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// Handler defaults.
const (
	DefaultPageSize     = 100
	DefaultMaxPages     = 20
	DefaultBidRetention = time.Hour
	DefaultWaitBudget   = 10 * time.Second
	DefaultLockTTL      = 10 * time.Second
	minRateLimitPause   = 100 * time.Millisecond
)

var (
	// ErrBusy: another scan of the marketplace holds its scan lock.
	ErrBusy = errors.New("scanner: another scan of this marketplace is running")
	// ErrUnknownMarketplace: no adapter is configured for the marketplace.
	ErrUnknownMarketplace = errors.New("scanner: unknown marketplace")
)

// HandlerOption configures a ScanHandler.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	log          *zap.Logger
	metrics      *Metrics
	pageSize     int
	maxPages     int
	bidRetention time.Duration
	perMarket    bool
	waitBudget   time.Duration
	lockTTL      time.Duration
	hashTags     bool
	rates        map[string]Rate
	recoverEvery time.Duration
	history      *history.Recorder
	track        TrackOptions
	accounts     map[string]map[string]marketplace.Adapter
	now          func() time.Time
}

// WithAccounts gives the tracker the adapters of the accounts of each
// agency-mode marketplace (by marketplace ID, then by Account()), so each
// bid's outcome is asked of the account that placed it. Scans use the
// marketplace's own adapter (NewScanHandler's).
func WithAccounts(accounts map[string][]marketplace.Adapter) HandlerOption {
	return func(o *handlerOptions) {
		o.accounts = make(map[string]map[string]marketplace.Adapter, len(accounts))
		for mp, ads := range accounts {
			by := make(map[string]marketplace.Adapter, len(ads))
			for _, a := range ads {
				by[a.Account()] = a
			}
			o.accounts[mp] = by
		}
	}
}

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) HandlerOption { return func(o *handlerOptions) { o.log = l } }

// WithMetrics sets the scanner metrics (default: an unregistered set).
func WithMetrics(m *Metrics) HandlerOption { return func(o *handlerOptions) { o.metrics = m } }

// WithPageSize sets how many postings one Scan call asks for (default 100).
func WithPageSize(n int) HandlerOption { return func(o *handlerOptions) { o.pageSize = n } }

// WithMaxPages bounds the pages one scan task fetches (default 20), so a big
// backlog is worked off over several slots instead of one endless task.
func WithMaxPages(n int) HandlerOption { return func(o *handlerOptions) { o.maxPages = n } }

// WithBidRetention sets how long a completed bid task keeps its ID taken
// (default 1h); re-scans within it are refused by asynq. The ledger covers
// the time after.
func WithBidRetention(d time.Duration) HandlerOption {
	return func(o *handlerOptions) { o.bidRetention = d }
}

// WithQueuePerMarketplace enqueues bid tasks on worker.MarketplaceQueue(mp)
// instead of the shared "bids" queue: on Redis Cluster each queue lives on
// one node, so one queue per marketplace spreads the load.
func WithQueuePerMarketplace(on bool) HandlerOption {
	return func(o *handlerOptions) { o.perMarket = on }
}

// WithWaitBudget sets how long one scan may wait in total for the shared
// request rate and for 429 Retry-After (default 10s). A scan that would wait
// longer ends, and the next slot continues from the cursor.
func WithWaitBudget(d time.Duration) HandlerOption {
	return func(o *handlerOptions) { o.waitBudget = d }
}

// WithLockTTL sets the scan lock's lease (default 10s, renewed while the scan
// runs); it is how long a crashed scan blocks the next one.
func WithLockTTL(d time.Duration) HandlerOption { return func(o *handlerOptions) { o.lockTTL = d } }

// WithHashTags puts the cursor key in its scan lock's Redis Cluster slot
// ("bid_scan_cursor:{<marketplace>:scan}"). All instances must agree.
func WithHashTags(on bool) HandlerOption { return func(o *handlerOptions) { o.hashTags = on } }

// WithRate sets a marketplace's shared request rate (requests_per_second in
// config). Marketplaces without one are not paced, but 429 pauses apply.
func WithRate(marketplaceID string, r Rate) HandlerOption {
	return func(o *handlerOptions) {
		if o.rates == nil {
			o.rates = map[string]Rate{}
		}
		o.rates[marketplaceID] = r
	}
}

// WithRecoverEvery sets how often, across all instances, a marketplace's
// recovery pass runs after one of its scans (default 1m; negative: never).
// It enqueues again the undecided postings whose bid task was lost.
func WithRecoverEvery(d time.Duration) HandlerOption {
	return func(o *handlerOptions) { o.recoverEvery = d }
}

// WithHistory reports enqueues refused as duplicates to r, for the status
// page's charts (default: none).
func WithHistory(r *history.Recorder) HandlerOption { return func(o *handlerOptions) { o.history = r } }

// enqueuer is the part of *asynq.Client the handler uses; tests wrap it to
// kill a scan in the middle of a page.
type enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// ScanHandler runs scan tasks: it pages through a marketplace from its stored
// cursor and enqueues one bid task per posting not yet decided.
type ScanHandler struct {
	client   enqueuer
	ledger   *ledger.Ledger
	adapters map[string]marketplace.Adapter
	wm       *worker.Metrics
	locks    *lock.Manager
	cursors  *cursorStore
	limiter  *limiter
	recovery *recoverer // nil: no recovery pass
	rdb      redis.UniversalClient
	o        handlerOptions
}

var _ asynq.Handler = (*ScanHandler)(nil)

// NewScanHandler builds the handler. adapters maps marketplace IDs to their
// adapters; the map is copied. metrics (the worker's) counts refused
// enqueues as duplicates prevented at the enqueue layer; nil is allowed.
func NewScanHandler(rdb redis.UniversalClient, client *asynq.Client, led *ledger.Ledger,
	adapters map[string]marketplace.Adapter, metrics *worker.Metrics, opts ...HandlerOption) *ScanHandler {
	o := handlerOptions{
		pageSize:     DefaultPageSize,
		maxPages:     DefaultMaxPages,
		bidRetention: DefaultBidRetention,
		waitBudget:   DefaultWaitBudget,
		lockTTL:      DefaultLockTTL,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = zap.NewNop()
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(nil)
	}
	if o.pageSize <= 0 {
		o.pageSize = DefaultPageSize
	}
	if o.maxPages <= 0 {
		o.maxPages = DefaultMaxPages
	}
	if o.bidRetention <= 0 {
		o.bidRetention = DefaultBidRetention
	}
	if o.waitBudget < 0 {
		o.waitBudget = 0
	}
	if o.lockTTL <= 0 {
		o.lockTTL = DefaultLockTTL
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.recoverEvery == 0 {
		o.recoverEvery = DefaultRecoverEvery
	}
	if o.track.Repoll <= 0 {
		o.track.Repoll = DefaultTrackRepoll
	}
	if o.track.Horizon <= 0 {
		o.track.Horizon = DefaultTrackHorizon
	}
	if o.track.MaxBids <= 0 {
		o.track.MaxBids = DefaultTrackMaxBids
	}
	ad := make(map[string]marketplace.Adapter, len(adapters))
	for k, v := range adapters {
		ad[k] = v
		o.metrics.forMarketplace(k)
	}
	h := &ScanHandler{
		client:   client,
		ledger:   led,
		adapters: ad,
		wm:       metrics,
		locks: lock.NewManager(rdb, lock.WithKeyPrefix(DefaultLockKeyPrefix), lock.WithHashTags(o.hashTags),
			lock.WithTTL(o.lockTTL), lock.WithLogger(o.log)),
		cursors: newCursorStore(rdb, o.hashTags),
		limiter: newLimiter(rdb, DefaultRateKeyPrefix),
		rdb:     rdb,
		o:       o,
	}
	if o.recoverEvery > 0 {
		h.recovery = &recoverer{rdb: rdb, client: client, insp: asynq.NewInspectorFromRedisClient(rdb), ledger: led, every: o.recoverEvery,
			retention: o.bidRetention, perMarket: o.perMarket, waits: rules.NewWaits(rdb, ""),
			metrics: o.metrics, log: o.log.Named("recovery"), postings: map[string]marketplace.PostingReader{}, pace: h.paceOne}
		for id, a := range ad {
			if pr, ok := a.(marketplace.PostingReader); ok {
				h.recovery.postings[id] = pr
			}
		}
	}
	return h
}

// CursorKey is the Redis key holding a marketplace's scan cursor.
func (h *ScanHandler) CursorKey(marketplaceID string) string { return h.cursors.Key(marketplaceID) }

// ProcessTask implements asynq.Handler. A busy lock ends the task with nil
// (the running scan covers the slot); a scan cut short by the page bound, the
// wait budget or a long Retry-After also ends with nil, since the next slot
// continues from the cursor. Transient failures return an error for asynq to
// retry; the cursor only ever points past pages whose tasks are enqueued.
func (h *ScanHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := DecodeScanPayload(t.Payload())
	if err != nil {
		h.o.metrics.runs.WithLabelValues("", ResultBadTask).Inc()
		h.o.log.Warn("scan task archived: bad payload", zap.Error(err))
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	sum, err := h.Scan(ctx, p.Marketplace)
	log := h.o.log.With(zap.String("marketplace", p.Marketplace), zap.Int64("slot", p.Slot), zap.Stringer("summary", sum))
	if h.recovery != nil && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrUnknownMarketplace) {
		// Whatever the scan did, the pass looks after what earlier scans
		// found: its failure is logged, never the scan's.
		if rec, ran, rerr := h.recovery.maybeRun(ctx, p.Marketplace); rerr != nil {
			log.Warn("recovery pass failed", zap.Error(rerr))
		} else if ran && rec.Due > 0 {
			log.Debug("recovery pass", zap.Int("due", rec.Due), zap.Int("missing", rec.Missing), zap.Int("enqueued", rec.Enqueued))
		}
	}
	switch {
	case errors.Is(err, ErrBusy):
		log.Debug("scan skipped: another scan is running")
		return nil
	case errors.Is(err, ErrUnknownMarketplace):
		log.Warn("scan task archived", zap.Error(err))
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	case err != nil:
		log.Warn("scan failed", zap.Error(err))
		if errors.Is(err, marketplace.ErrPermanent) {
			// Retrying this slot cannot help; the next slot tries again.
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	}
	if sum.Seen > 0 || sum.Result != ResultCaughtUp {
		log.Info("scan done")
	} else {
		// Most slots find nothing new; at @every 10s that would flood Info.
		log.Debug("scan done: nothing new")
	}
	return nil
}

// Scan runs one scan of marketplaceID under its scan lock. See ProcessTask
// for how it ends; ScanOnce calls it directly.
func (h *ScanHandler) Scan(ctx context.Context, marketplaceID string) (sum Summary, err error) {
	start := time.Now()
	sum = Summary{Marketplace: marketplaceID}
	defer func() {
		sum.Duration = time.Since(start)
		if err != nil && sum.Result == "" {
			sum.Result = ResultError
		}
		if errors.Is(err, ErrUnknownMarketplace) {
			sum.Result = ResultBadTask
		}
		h.o.metrics.runs.WithLabelValues(marketplaceID, sum.Result).Inc()
		if sum.Result != ResultBusy && sum.Result != ResultBadTask {
			h.o.metrics.duration.WithLabelValues(marketplaceID).Observe(sum.Duration.Seconds())
		}
	}()

	ad, ok := h.adapters[marketplaceID]
	if !ok {
		return sum, fmt.Errorf("%w %q", ErrUnknownMarketplace, marketplaceID)
	}
	lk, err := h.locks.TryAcquire(ctx, marketplaceID, scanLockName)
	if errors.Is(err, lock.ErrNotAcquired) {
		sum.Result = ResultBusy
		return sum, fmt.Errorf("%w: %s", ErrBusy, marketplaceID)
	}
	if err != nil {
		return sum, fmt.Errorf("scanner: scan lock of %s: %w", marketplaceID, err)
	}
	defer func() {
		// The task's ctx may be cancelled already; the release still has to
		// reach Redis or the next scan waits out the TTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if rerr := lk.Release(rctx); rerr != nil && err == nil {
			h.o.log.Warn("scan lock release failed", zap.String("marketplace", marketplaceID), zap.Error(rerr))
		}
	}()
	// Work under the lock's context: if the lock is lost the scan stops
	// instead of racing the scan that took over.
	return h.scan(lk.Context(), lk, ad, marketplaceID, sum)
}

// scanState is one scan's progress.
type scanState struct {
	mp      string
	ad      marketplace.Adapter
	lk      *lock.Lock
	rate    Rate
	waited  time.Duration
	reset   bool // the reset probe was spent
	limited bool // the marketplace answered 429 during this scan
	newest  time.Time
	log     *zap.Logger
}

func (h *ScanHandler) scan(ctx context.Context, lk *lock.Lock, ad marketplace.Adapter, mp string, in Summary) (sum Summary, err error) {
	sum = in
	st := &scanState{mp: mp, ad: ad, lk: lk, rate: h.o.rates[mp], log: h.o.log.With(zap.String("marketplace", mp))}
	defer func() {
		if err != nil && sum.Result == "" {
			sum.Result = ResultError
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		h.writeStatus(wctx, sum, st.newest)
		cancel()
	}()
	cursor, err := h.cursors.get(ctx, mp)
	if err != nil {
		return sum, err
	}
	sum.CursorBefore, sum.CursorAfter = cursor, cursor
	if !plausibleCursor(cursor) {
		st.log.Warn("stored scan cursor is malformed; scanning from the start", zap.String("cursor", quoteCursor(cursor)))
		cursor, sum.CursorReset, st.reset = "", true, true
	}
	for sum.Pages < h.o.maxPages {
		page, from, result, err := h.fetch(ctx, st, cursor, &sum)
		if err != nil || result != "" {
			sum.Result = result
			return sum, err
		}
		cursor = from
		if err := h.enqueuePage(ctx, st, page, &sum); err != nil {
			return sum, err
		}
		sum.Pages++
		caughtUp := len(page.Postings) == 0 || page.NextCursor == cursor
		// An empty next cursor only ever means "nothing from the start";
		// storing it is right only after a reset, never mid-scan.
		if page.NextCursor != sum.CursorAfter && (page.NextCursor != "" || sum.CursorReset) {
			// Only now, with every task of the page enqueued, may the cursor
			// move past it: a crash before this line re-scans the page.
			if err := h.cursors.set(ctx, lk, mp, page.NextCursor); err != nil {
				return sum, err
			}
			sum.CursorAfter = page.NextCursor
		}
		if caughtUp {
			sum.Result = ResultCaughtUp
			return sum, nil
		}
		cursor = page.NextCursor
	}
	sum.Result = ResultPageLimit
	return sum, nil
}

// fetch gets the page after cursor, pacing itself on the shared limiter and
// honouring 429s within the wait budget. It returns the page and the cursor
// it was fetched from ("" after a reset). A non-empty result ends the scan
// without an error.
func (h *ScanHandler) fetch(ctx context.Context, st *scanState, cursor string, sum *Summary) (marketplace.Page, string, string, error) {
	for {
		if res, err := h.pace(ctx, st); res != "" || err != nil {
			return marketplace.Page{}, cursor, res, err
		}
		page, err := st.ad.Scan(ctx, cursor, h.o.pageSize)
		switch {
		case err == nil:
			return page, cursor, "", nil
		case ctx.Err() != nil:
			return marketplace.Page{}, cursor, "", fmt.Errorf("scanner: scan %s: %w (%w)", st.mp, err, context.Cause(ctx))
		case errors.Is(err, marketplace.ErrRateLimited):
			if perr := h.rateLimited(ctx, st, err); perr != nil {
				return marketplace.Page{}, cursor, "", perr
			}
			continue
		case errors.Is(err, marketplace.ErrPermanent) && cursor != "" && !st.reset:
			// Either the cursor is bad or the marketplace refuses us
			// altogether; a scan from the start tells which. The stored
			// cursor is only replaced once a page from "" is enqueued.
			st.reset = true
			st.log.Warn("marketplace refused the stored scan cursor; retrying from the start",
				zap.String("cursor", quoteCursor(cursor)), zap.Error(err))
			sum.CursorReset = true
			cursor = ""
			continue
		default:
			return marketplace.Page{}, cursor, "", fmt.Errorf("scanner: scan %s after cursor %s: %w", st.mp, quoteCursor(cursor), err)
		}
	}
}

// rateLimited pauses every instance's requests to the marketplace for the
// Retry-After of a 429 (err).
func (h *ScanHandler) rateLimited(ctx context.Context, st *scanState, err error) error {
	d, ok := marketplace.RetryAfter(err)
	if !ok {
		d = time.Second
	}
	// A floor keeps a marketplace that sends tiny delays from turning the
	// wait budget into thousands of requests.
	d = max(d, minRateLimitPause)
	st.limited = true
	// Every instance calls as the same account, so the pause is shared: the
	// next pace() of any instance waits it out.
	if perr := h.limiter.pause(ctx, st.mp, st.rate, d); perr != nil {
		return perr
	}
	st.log.Info("marketplace rate limited us", zap.Duration("retry_after", d))
	return nil
}

// paceOne waits for one request slot of the marketplace's shared rate,
// for a request outside a scan; ok is false when that would take longer
// than maxWait.
func (h *ScanHandler) paceOne(ctx context.Context, marketplaceID string, maxWait time.Duration) (bool, error) {
	wait, ok, err := h.limiter.reserve(ctx, marketplaceID, h.o.rates[marketplaceID], maxWait)
	if err != nil || !ok {
		return false, err
	}
	return true, sleep(ctx, wait)
}

// pace waits for the marketplace's next request slot; a non-empty result
// means the wait would exceed the scan's budget.
func (h *ScanHandler) pace(ctx context.Context, st *scanState) (string, error) {
	left := h.o.waitBudget - st.waited
	wait, ok, err := h.limiter.reserve(ctx, st.mp, st.rate, left)
	if err != nil {
		return "", err
	}
	if !ok {
		st.log.Info("scan ends: waiting for the marketplace's request rate would exceed the budget",
			zap.Duration("wait", wait), zap.Duration("budget_left", left))
		if st.limited {
			return ResultRateLimited, nil
		}
		return ResultRateBudget, nil
	}
	st.waited += wait
	if err := sleep(ctx, wait); err != nil {
		return "", fmt.Errorf("scanner: scan %s: waiting for rate limiter: %w", st.mp, err)
	}
	return "", nil
}

// enqueuePage enqueues the bid tasks of a page's undecided postings. It
// returns an error (and the cursor stays) unless every one was enqueued or
// already existed.
func (h *ScanHandler) enqueuePage(ctx context.Context, st *scanState, page marketplace.Page, sum *Summary) error {
	m := h.o.metrics
	sum.Seen += len(page.Postings)
	m.seen.WithLabelValues(st.mp).Add(float64(len(page.Postings)))
	if len(page.Postings) == 0 {
		return nil
	}
	tasks := make([]*asynq.Task, 0, len(page.Postings))
	ids := make([]string, 0, len(page.Postings))
	var newest time.Time
	for _, p := range page.Postings {
		if p.MarketplaceID == "" {
			p.MarketplaceID = st.mp
		}
		if p.PostedAt.After(newest) {
			newest = p.PostedAt
		}
		if p.MarketplaceID != st.mp {
			h.invalid(st, sum, p, fmt.Errorf("posting of marketplace %q in a scan of %q", p.MarketplaceID, st.mp))
			continue
		}
		topts := []asynq.Option{asynq.Retention(h.o.bidRetention)}
		if h.o.perMarket {
			topts = append(topts, asynq.Queue(worker.MarketplaceQueue(st.mp)))
		}
		t, err := worker.NewBidTask(p, topts...)
		if err != nil {
			h.invalid(st, sum, p, err)
			continue
		}
		tasks = append(tasks, t)
		ids = append(ids, p.ID)
	}
	if !newest.IsZero() {
		m.lag.WithLabelValues(st.mp).Set(h.o.now().Sub(newest).Seconds())
		if newest.After(st.newest) {
			st.newest = newest
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// Record every undecided posting (with its task's payload) before its
	// task exists: if the task is then lost, the recovery pass finds the
	// posting and enqueues it again. Decided and parked postings are left
	// alone.
	found := make([]ledger.Found, len(tasks))
	for i, t := range tasks {
		found[i] = ledger.Found{PostingID: ids[i], Payload: t.Payload()}
	}
	disc, err := h.ledger.Discover(ctx, st.mp, found)
	if err != nil {
		return fmt.Errorf("scanner: scan %s: %w", st.mp, err)
	}
	for i, t := range tasks {
		if disc[i] != ledger.Open {
			sum.AlreadyDecided++
			continue
		}
		_, err := h.client.EnqueueContext(ctx, t)
		switch {
		case err == nil:
			sum.Enqueued++
			m.enqueued.WithLabelValues(st.mp).Inc()
		case errors.Is(err, asynq.ErrTaskIDConflict):
			sum.Duplicates++
			m.duplicates.WithLabelValues(st.mp).Inc()
			if h.wm != nil {
				h.wm.DuplicatePrevented(worker.LayerEnqueue)
			}
			h.o.history.Count(st.mp, "dup:"+worker.LayerEnqueue, 1)
		default:
			return fmt.Errorf("scanner: scan %s: enqueue bid task for %s: %w", st.mp, ids[i], err)
		}
	}
	return nil
}

func (h *ScanHandler) invalid(st *scanState, sum *Summary, p marketplace.Posting, err error) {
	sum.Invalid++
	h.o.metrics.invalid.WithLabelValues(st.mp).Inc()
	// The ID is outside input: zap quotes it, and lock's errors truncate it.
	st.log.Warn("posting not enqueued: invalid", zap.Error(err))
}
