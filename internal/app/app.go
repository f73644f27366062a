// Package app assembles a bidder process from its config: the shared Redis
// client, lock manager, ledger, adapters, handlers, asynq server, scheduler
// and HTTP listener, and runs the roles a subcommand asks for. cmd/bidder is
// only flags and exit codes on top of it.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	asynqmetrics "github.com/hibiken/asynq/x/metrics"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/history"
	"github.com/bidder/bidder/internal/httpserver"
	"github.com/bidder/bidder/internal/logx"
	"github.com/bidder/bidder/internal/redisconn"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/freelancer"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/notify"
	"github.com/bidder/bidder/scanner"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/proposal"
	"github.com/bidder/bidder/worker/rules"
)

// Roles says what a process does.
type Roles struct {
	Name      string // subcommand, for logs and the status page
	Scheduler bool   // enqueue scan tasks on schedule
	Worker    bool   // run scan and bid tasks
	// Monitor serves the asynqmon UI (if enabled in config) and exports
	// asynq's cluster-wide queue metrics. Only run and monitor do: every
	// instance exporting the same cluster-wide series would only duplicate
	// them.
	Monitor bool
}

// Adapters returns the registry of adapters this binary knows.
func Adapters() (*marketplace.Registry, error) {
	reg := marketplace.NewRegistry()
	if err := sandbox.Register(reg); err != nil {
		return nil, fmt.Errorf("app: register sandbox adapter: %w", err)
	}
	if err := freelancer.Register(reg); err != nil {
		return nil, fmt.Errorf("app: register freelancer adapter: %w", err)
	}
	return reg, nil
}

// AdapterConfig is what a marketplace's adapter is built from (for an
// embedded one, the caller fills in its sandbox's URL and token).
func AdapterConfig(m config.Marketplace, log *zap.Logger) marketplace.Config {
	return marketplace.Config{
		ID: m.ID, BaseURL: m.BaseURL, Token: m.Token, Account: m.Account, Options: m.Options,
		RequestTimeout: time.Duration(m.RequestTimeout),
		Logger:         log.Named("marketplace").With(zap.String("marketplace", m.ID)),
	}
}

// NewLogger builds the process logger: with log.format auto (the
// default) console on a terminal and JSON elsewhere; json or console always.
func NewLogger(c config.Log, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var e zapcore.Encoder
	if c.Format == "console" || (c.Format == config.LogFormatAuto && isTerminal(w)) {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		e = zapcore.NewConsoleEncoder(enc)
	} else {
		e = zapcore.NewJSONEncoder(enc)
	}
	return zap.New(zapcore.NewCore(logx.Escaping(e), zapcore.AddSync(w), lvl)), nil
}

// App is one assembled process. Build it with New, then Run or use its parts.
type App struct {
	Cfg      config.Config
	Log      *zap.Logger
	Registry *prometheus.Registry
	Conn     *redisconn.Conn
	Locks    *lock.Manager
	Ledger   *ledger.Ledger
	Client   *asynq.Client
	Adapters map[string]marketplace.Adapter
	// Accounts are the adapters of agency-mode marketplaces' accounts.
	Accounts map[string][]marketplace.Adapter
	Markets  map[string]worker.Marketplace
	Metrics  *worker.Metrics
	// History tallies decisions for the status page and flushes them to
	// Redis while the worker runs.
	History *history.Recorder
	// Conditions are what makes this process's tasks wait rather than fail
	// (replicas short, Redis or a marketplace down): /readyz reports them.
	Conditions *worker.Conditions
	Scan       *scanner.ScanHandler
	ScanMet    *scanner.Metrics
	// Reload re-reads the config from where it came from; the scheduler
	// uses it to pick up schedule changes without a restart. nil: the
	// schedules of Cfg stay as they are.
	Reload func() (config.Config, error)

	version   string
	propMet   *proposal.Metrics
	sandboxes []*embeddedSandbox
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// New assembles everything without contacting Redis, so a Redis that is
// down at start delays readiness instead of failing start-up. Embedded
// sandboxes start here (they are local and must be up for their adapters).
func New(ctx context.Context, cfg config.Config, log *zap.Logger, version string) (_ *App, err error) {
	a := &App{Cfg: cfg, Log: log, Registry: prometheus.NewRegistry(), version: version}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = stop
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if a.Conn, err = redisconn.Open(cfg); err != nil {
		return nil, err
	}
	rdb := a.Conn.Client
	a.Locks = lock.NewManager(rdb,
		lock.WithTTL(time.Duration(cfg.Lock.TTL)),
		lock.WithHashTags(cfg.Redis.HashTags),
		lock.WithLogger(log.Named("lock")),
		lock.WithRegisterer(a.Registry))
	a.Client = asynq.NewClientFromRedisClient(rdb)
	a.Metrics = worker.NewMetrics(a.Registry)
	a.Conditions = worker.NewConditions(a.Registry)
	a.ScanMet = scanner.NewMetrics(a.Registry)

	reg, err := Adapters()
	if err != nil {
		return nil, err
	}
	a.Adapters = map[string]marketplace.Adapter{}
	a.Accounts = map[string][]marketplace.Adapter{}
	a.Markets = map[string]worker.Marketplace{}
	scanOpts := []scanner.HandlerOption{
		scanner.WithHashTags(cfg.Redis.HashTags),
		scanner.WithLogger(log.Named("scanner")),
		scanner.WithMetrics(a.ScanMet),
	}
	pageSize := 0
	for i, m := range cfg.Marketplaces {
		key := fmt.Sprintf("marketplaces[%d]", i)
		mc := AdapterConfig(m, log)
		if m.Embedded {
			sb, err := startSandbox(bg, log, &a.wg)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			a.sandboxes = append(a.sandboxes, sb)
			mc.BaseURL, mc.Token = sb.url, sb.token
		}
		var wm worker.Marketplace
		if len(m.Accounts) > 0 {
			// Agency mode: the accounts bid, the first one scans. Budgets
			// count per account; the marketplace has none of its own.
			if wm.Accounts, err = accounts(reg, rdb, m, key, log); err != nil {
				return nil, err
			}
			ads := make([]marketplace.Adapter, len(wm.Accounts))
			for j, ac := range wm.Accounts {
				ads[j] = ac.Adapter
			}
			a.Accounts[m.ID] = ads
			wm.Adapter, wm.Rules = ads[0], wm.Accounts[0].Rules
		} else {
			if wm.Adapter, err = reg.New(m.Adapter, mc); err != nil {
				// Adapters never quote their token (their tests hold them to it).
				return nil, &config.Error{Key: key, Problem: err.Error(), Err: err}
			}
			if wm.Rules, err = rules.New(m.Rules); err != nil {
				return nil, &config.Error{Key: key + ".rules", Problem: err.Error(), Err: err}
			}
			wm.Budget = budgetOf(rdb, m.Rules)
		}
		ad := wm.Adapter
		if m.Proposals.IsModel() {
			w, err := proposal.New(m.Proposals, proposal.WithRedis(rdb), proposal.WithMetrics(a.propMetrics()))
			if err != nil {
				return nil, &config.Error{Key: key + ".proposals", Problem: err.Error(), Err: err}
			}
			wm.Proposals = &worker.Proposals{Writer: w, Store: proposal.NewStore(rdb,
				proposal.WithHashTags(cfg.Redis.HashTags), proposal.WithRetention(time.Duration(cfg.Ledger.Retention)),
				proposal.WithStoreMetrics(a.propMetrics()))}
		}
		a.Adapters[m.ID] = ad
		a.Markets[m.ID] = wm
		scanOpts = append(scanOpts, scanner.WithRate(m.ID, scanner.Rate{PerSecond: m.Scan.RequestsPerSecond}))
		// The scan handler takes one page size for all marketplaces; the
		// largest configured one means the fewest requests.
		pageSize = max(pageSize, m.Scan.PageSize)
	}
	if pageSize > 0 {
		scanOpts = append(scanOpts, scanner.WithPageSize(pageSize))
	}
	// After the adapters: the ledger enters placed bids in the tracker's
	// index only where an adapter can read their status.
	a.Ledger = NewLedger(cfg, rdb, ledger.WithRegisterer(a.Registry),
		ledger.WithTracking(time.Duration(cfg.Tracker.FirstAfter), a.tracked()...))
	scanOpts = append(scanOpts, scanner.WithTracker(scanner.TrackOptions{
		Repoll: time.Duration(cfg.Tracker.Repoll), Horizon: time.Duration(cfg.Tracker.Horizon), MaxBids: cfg.Tracker.MaxBids}))
	recoverEvery := time.Duration(cfg.Recovery.Every)
	if recoverEvery == 0 {
		recoverEvery = -1 // off
	}
	scanOpts = append(scanOpts, scanner.WithQueuePerMarketplace(cfg.Worker.QueuePerMarketplace),
		scanner.WithRecoverEvery(recoverEvery))
	a.History = history.NewRecorder(rdb, history.WithLogger(log.Named("history")))
	scanOpts = append(scanOpts, scanner.WithHistory(a.History))
	scanOpts = append(scanOpts, scanner.WithAccounts(a.Accounts))
	a.Scan = scanner.NewScanHandler(rdb, a.Client, a.Ledger, a.Adapters, a.Metrics, scanOpts...)
	return a, nil
}

// budgetOf is the bid budget rules configure, nil for none.
func budgetOf(rdb redis.UniversalClient, r rules.Config) *rules.Budget {
	b := r.BidBudget
	if b.PerHour <= 0 && b.PerDay <= 0 && b.PerWeek <= 0 && b.PerMonth <= 0 {
		return nil
	}
	return rules.NewBudget(rdb, rules.DefaultBudgetPrefix, b.PerHour, b.PerDay, rules.PerWeek(b.PerWeek), rules.PerMonth(b.PerMonth))
}

// AccountConfig is the adapter config of one of m's accounts.
func AccountConfig(m config.Marketplace, ac config.Account, log *zap.Logger) marketplace.Config {
	mc := AdapterConfig(m, log)
	mc.Token, mc.Account = ac.Token, ac.Name
	mc.Logger = mc.Logger.With(zap.String("account", ac.Name))
	return mc
}

// accounts builds an agency-mode marketplace's accounts: an adapter,
// rules and bid budget each.
func accounts(reg *marketplace.Registry, rdb redis.UniversalClient, m config.Marketplace, key string, log *zap.Logger) ([]worker.Account, error) {
	out := make([]worker.Account, len(m.Accounts))
	for j, ac := range m.Accounts {
		akey := fmt.Sprintf("%s.accounts[%d]", key, j)
		ad, err := reg.New(m.Adapter, AccountConfig(m, ac, log))
		if err != nil {
			return nil, &config.Error{Key: akey, Problem: err.Error(), Err: err}
		}
		eng, err := rules.New(ac.Rules.Resolved)
		if err != nil {
			return nil, &config.Error{Key: akey + ".rules", Problem: err.Error(), Err: err}
		}
		out[j] = worker.Account{Adapter: ad, Rules: eng, Budget: budgetOf(rdb, ac.Rules.Resolved)}
	}
	return out, nil
}

// tracked lists the marketplaces whose bids the tracker follows: with
// tracking on, those whose adapter reads bid statuses.
func (a *App) tracked() []string {
	if a.Cfg.Tracker.Every <= 0 {
		return nil
	}
	var out []string
	for id, ad := range a.Adapters {
		if _, ok := ad.(marketplace.StatusReader); ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// propMetrics is the proposal writers' one set of metrics, made on first use.
func (a *App) propMetrics() *proposal.Metrics {
	if a.propMet == nil {
		a.propMet = proposal.NewMetrics(a.Registry)
	}
	return a.propMet
}

// NewLedger is the ledger as cfg configures it (the daemon's and the
// operator commands' alike).
func NewLedger(cfg config.Config, rdb redis.UniversalClient, extra ...ledger.Option) *ledger.Ledger {
	return ledger.New(rdb, append([]ledger.Option{
		ledger.WithRetention(time.Duration(cfg.Ledger.Retention)),
		ledger.WithHashTags(cfg.Redis.HashTags),
		ledger.WithWaitReplicas(cfg.Ledger.WaitReplicas, time.Duration(cfg.Ledger.WaitTimeout)),
		ledger.WithRecheck(time.Duration(cfg.Recovery.After)),
		// Operator commands write events too (a park from the CLI is a
		// parked posting like any other): an event exists exactly when
		// its change does, whoever makes it.
		ledger.WithNotifications(cfg.Notify.Enabled),
	}, extra...)...)
}

// Close releases what New built. Safe to call more than once.
func (a *App) Close() {
	if a.stop != nil {
		a.stop()
	}
	a.wg.Wait()
	if a.Client != nil {
		_ = a.Client.Close() // does not close the shared client
	}
	if a.Conn != nil {
		_ = a.Conn.Close()
		a.Conn = nil
	}
}

// SandboxStats returns the stats of the embedded sandboxes (for logs).
func (a *App) SandboxStats() []sandbox.Stats {
	var out []sandbox.Stats
	for _, s := range a.sandboxes {
		out = append(out, s.srv.Stats())
	}
	return out
}

type embeddedSandbox struct {
	srv        *sandbox.Server
	url, token string
}

// startSandbox runs an in-process sandbox marketplace that keeps publishing
// postings, with a random token so no other local process can bid with it.
func startSandbox(ctx context.Context, log *zap.Logger, wg *sync.WaitGroup) (*embeddedSandbox, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	cfg := sandbox.DefaultServerConfig()
	cfg.Tokens = []string{"embedded-" + hex.EncodeToString(b[:])}
	cfg.Postings, cfg.Rate = 20, 2
	cfg.Seed = uint64(time.Now().UnixNano())
	cfg.Logger = log.Named("sandbox")
	srv, err := sandbox.NewServer(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded sandbox: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded sandbox: %w", err)
	}
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(ctx, ln) }()
	go func() { defer wg.Done(); _ = srv.Generate(ctx) }()
	return &embeddedSandbox{srv: srv, url: "http://" + ln.Addr().String(), token: cfg.Tokens[0]}, nil
}

// Run runs roles until ctx ends, then drains: scheduling stops first, the
// worker finishes running tasks within worker.shutdown_timeout and releases
// its locks, then the HTTP listener closes. A clean stop returns nil.
func (a *App) Run(ctx context.Context, roles Roles) error {
	log := a.Log
	var workerUp, schedulerUp, draining atomic.Bool
	ready := func(ctx context.Context) error {
		if draining.Load() {
			// Load balancers stop sending UI traffic while we drain.
			return errors.New("shutting down")
		}
		if err := a.Conn.Ping(ctx, time.Second); err != nil {
			return err
		}
		if roles.Worker && !workerUp.Load() {
			return errors.New("worker not started")
		}
		if roles.Scheduler && !schedulerUp.Load() {
			return errors.New("scheduler not started")
		}
		if roles.Worker {
			// Waits that stop every bid this process could place.
			return a.Conditions.Blocking(slices.Collect(maps.Keys(a.Markets)))
		}
		return nil
	}

	hopts := httpserver.Options{
		Addr:     a.Cfg.HTTP.Addr,
		Gatherer: a.Registry,
		Ready:    ready,
		Logger:   log,
		Info: map[string]string{
			"role": roles.Name, "version": a.version, "redis": a.Conn.Where, "config": a.Cfg.Source,
		},
	}
	hopts.AllowedHosts = a.Cfg.HTTP.AllowedHosts
	hopts.Status = a.statusSource()
	mon := a.Cfg.HTTP.Monitoring
	if a.Cfg.HTTP.Actions.Enabled {
		// Config validation refuses actions without basic auth.
		hopts.Actions = a.statusActions()
		hopts.Username, hopts.Password = mon.BasicAuth.Username, mon.BasicAuth.Password
	}
	if roles.Monitor {
		insp := asynq.NewInspectorFromRedisClient(a.Conn.Client)
		a.Registry.MustRegister(asynqmetrics.NewQueueMetricsCollector(insp))
		a.Registry.MustRegister(newParkedCollector(a.Ledger, slices.Sorted(maps.Keys(a.Markets)), log.Named("parked")))
		if mon.Enabled {
			// asynqmon is handed the shared client and never closed, so it
			// cannot close the client everyone else uses.
			hopts.Monitoring = asynqmon.New(asynqmon.Options{
				RootPath: httpserver.MonitoringRoot, RedisConnOpt: a.Conn.ConnOpt(), ReadOnly: mon.ReadOnly,
			})
			hopts.Username, hopts.Password = mon.BasicAuth.Username, mon.BasicAuth.Password
		}
	}
	// SIGHUP is handled from here on (main ignores it until now).
	var reload chan struct{}
	if roles.Scheduler {
		reload = make(chan struct{}, 1)
	}
	stopHUP := watchSIGHUP(log, roles.Name, reload)
	defer stopHUP()

	hs, err := httpserver.Listen(hopts)
	if err != nil {
		return err
	}
	base := "http://" + hs.Addr()
	fields := []zap.Field{
		zap.String("version", a.version),
		zap.String("status_page", base+"/"), zap.String("metrics", base+"/metrics"),
		zap.String("redis", a.Conn.Where), zap.String("config", a.Cfg.Source),
	}
	if hopts.Monitoring != nil {
		fields = append(fields, zap.String("monitoring_ui", base+httpserver.MonitoringRoot+"/"))
	}
	if hopts.Actions != nil {
		fields = append(fields, zap.Bool("status_actions", true))
	}
	log.Info("bidder starting", fields...)
	if a.Conn.Embedded() {
		log.Warn("embedded mode: in-process Redis, data is in memory only and lost on exit; set REDIS_URL or redis.* for real use",
			zap.Int("embedded_sandboxes", len(a.sandboxes)))
	}

	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHTTP()
	httpErr := make(chan error, 1)
	go func() { httpErr <- hs.Serve(httpCtx) }()

	// Redis down at start: wait (not ready meanwhile), never exit.
	if err := a.Conn.WaitReady(ctx, log); err != nil {
		stopHTTP()
		<-httpErr
		if errors.Is(err, redisconn.ErrMisconfigured) {
			return &config.Error{Key: "redis", Problem: err.Error(), Err: err}
		}
		return nil // ctx ended while waiting: a clean stop
	}

	// The history flushes until the worker has drained (its last tasks'
	// decisions included).
	historyCtx, stopHistory := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHistory()
	historyDone := make(chan struct{})
	go func() { a.History.Run(historyCtx); close(historyDone) }()
	var srv *worker.Server
	stopSweeper := func() {}
	if roles.Worker {
		bids, err := worker.NewBidHandler(a.Locks, a.Ledger, a.Markets,
			worker.WithSettleDelay(time.Duration(a.Cfg.Worker.SettleDelay)),
			worker.WithMaxRetry(a.Cfg.Worker.MaxRetry),
			worker.WithMetrics(a.Metrics),
			worker.WithConditions(a.Conditions),
			worker.WithEnqueuer(a.Client),
			worker.WithHistory(a.History),
			worker.WithLogger(log.Named("bid")))
		if err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		mux := worker.NewMux(bids, a.Metrics, log.Named("task"))
		mux.Handle(scanner.TypeScan, a.Scan)
		mux.Handle(scanner.TypeTrack, a.Scan.TrackHandler())
		var sweeper *notify.Sweeper
		if a.Cfg.Notify.Enabled {
			ncfg, err := notify.FromConfig(a.Cfg.Notify, a.marketplaceIDs(), nil)
			if err != nil {
				stopHTTP()
				<-httpErr
				return err
			}
			nmet := notify.NewMetrics(a.Registry)
			mux.Handle(notify.TypeSend, notify.NewHandler(a.Conn.Client, ncfg,
				notify.WithMetrics(nmet), notify.WithLogger(log.Named("notify"))))
			sweeper = notify.NewSweeper(a.Conn.Client, a.Client, a.Ledger, ncfg, nmet, log.Named("notify"))
			if after := time.Duration(a.Cfg.Notify.RedisDownAfter); after > 0 {
				watch := notify.NewOutageWatch(a.Conn.Client, ncfg, after, instanceName(), nmet, log.Named("notify"))
				watch.Start()
				defer watch.Shutdown()
			}
		}
		srv = worker.NewServer(a.Conn.Client, worker.ServerConfig{
			Concurrency:     a.Cfg.Worker.Concurrency,
			Queues:          a.queues(),
			ShutdownTimeout: time.Duration(a.Cfg.Worker.ShutdownTimeout),
			PollInterval:    time.Duration(a.Cfg.Worker.PollInterval),
			Logger:          log,
		}, a.Locks)
		if err := srv.Start(mux); err != nil {
			stopHTTP()
			<-httpErr
			return err
		}
		if sweeper != nil {
			// Stopped before the worker drains (deferred calls run after
			// it): entries it has not popped stay in the outbox.
			sweeper.Start()
			stopSweeper = sweeper.Shutdown
		}
		workerUp.Store(true)
		log.Info("worker started", zap.Int("concurrency", a.Cfg.Worker.Concurrency), zap.Any("queues", a.queues()),
			zap.Bool("notifications", sweeper != nil))
		if every := time.Duration(a.Cfg.Log.SummaryInterval); every > 0 {
			sum := &summarizer{log: log, every: every, ids: a.marketplaceIDs(), source: a.snapshots}
			sumCtx, stopSum := context.WithCancel(ctx)
			sumDone := make(chan struct{})
			go func() { defer close(sumDone); sum.run(sumCtx) }()
			defer func() { stopSum(); <-sumDone }()
		}
	}

	// A nil channel never fires: without a scheduler only ctx and HTTP end the run.
	var schedDone chan error
	schedCtx, stopSched := context.WithCancel(ctx)
	defer stopSched()
	if roles.Scheduler {
		schedDone = make(chan error, 1)
		go func() { schedDone <- a.runScheduler(schedCtx, &schedulerUp, reload) }()
	}

	var runErr error
	schedFinished, httpFinished := false, false
	select {
	case <-ctx.Done():
		log.Info("stopping: signal received")
	case err := <-httpErr:
		runErr, httpFinished = err, true
	case err := <-schedDone:
		runErr, schedFinished = err, true
	}
	draining.Store(true)
	stopSched()
	if schedDone != nil && !schedFinished {
		if err := <-schedDone; err != nil && runErr == nil {
			runErr = err
		}
	}
	stopSweeper()
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		srv.Shutdown(sctx)
		cancel()
		log.Info("worker drained")
	}
	stopHistory()
	<-historyDone
	stopHTTP()
	if !httpFinished {
		if err := <-httpErr; err != nil && runErr == nil {
			runErr = err
		}
	}
	if runErr != nil {
		return runErr
	}
	log.Info("bidder stopped")
	return nil
}

// marketplaceIDs are the configured marketplaces, in config order.
func (a *App) marketplaceIDs() []string {
	ids := make([]string, 0, len(a.Cfg.Marketplaces))
	for _, m := range a.Cfg.Marketplaces {
		ids = append(ids, m.ID)
	}
	return ids
}

// queues are the queue weights the worker serves. With one queue per
// marketplace each "bids:<id>" gets the weight of "bids"; "bids" itself is
// still served, for tasks enqueued before the switch.
func (a *App) queues() map[string]int {
	q := make(map[string]int, len(a.Cfg.Worker.Queues)+len(a.Cfg.Marketplaces))
	for name, w := range a.Cfg.Worker.Queues {
		q[name] = w
	}
	if a.Cfg.Notify.Enabled {
		// Small: a notification can wait behind bids, never the reverse.
		q[notify.Queue] = 1
	}
	if a.Cfg.Worker.QueuePerMarketplace {
		w := q[worker.QueueBids]
		if w == 0 {
			w = 1
		}
		ws := q[worker.QueueScans]
		if ws == 0 {
			ws = 1
		}
		for _, m := range a.Cfg.Marketplaces {
			q[worker.MarketplaceQueue(m.ID)] = w
			q[worker.MarketplaceScanQueue(m.ID)] = ws
		}
	}
	return q
}

// instanceName names this process in notifications no ledger script
// writes (Redis unreachable): host and PID, as asynq names its servers.
func instanceName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}
