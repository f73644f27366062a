package main

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/config"
)

// configFlags are the flags every command that reads the config takes.
type configFlags struct {
	path  string
	flags config.Flags
}

func (f *configFlags) add(cmd *cobra.Command, daemon bool) {
	cmd.Flags().StringVar(&f.path, "config", "", "config file (default: ./bidder.yaml, then configs/bidder.yaml, then the built-in embedded config)")
	cmd.Flags().StringVar(&f.flags.LogLevel, "log-level", "", "debug, info, warn or error (overrides log.level and BIDDER_LOG_LEVEL)")
	cmd.Flags().StringVar(&f.flags.LogFormat, "log-format", "", "json or console (overrides log.format and BIDDER_LOG_FORMAT)")
	if daemon {
		cmd.Flags().StringVar(&f.flags.HTTPAddr, "http-addr", "", "HTTP listen address (overrides http.addr and BIDDER_HTTP_ADDR)")
	}
}

func (f *configFlags) load() (config.Config, error) {
	reg, err := app.Adapters()
	if err != nil {
		return config.Config{}, err
	}
	return config.Load(config.Options{Path: f.path, Adapters: reg.Names(), Flags: f.flags})
}

// setup loads the config and builds the logger and the App.
func (f *configFlags) setup(ctx context.Context, e env, role string) (*app.App, error) {
	cfg, err := f.load()
	if err != nil {
		return nil, err
	}
	log, err := app.NewLogger(cfg.Log, e.stderr)
	if err != nil {
		return nil, err
	}
	log = log.With(zap.String("role", role))
	// go-redis logs dial failures on its own through a global logger; route
	// them to zap so no unstructured line reaches the log. (Its messages
	// name addresses and master names, never credentials.)
	redis.SetLogger(redisLogger{log.Named("redis")})
	a, err := app.New(ctx, cfg, log, version)
	if err != nil {
		_ = log.Sync()
		return nil, err
	}
	// Schedules are re-read from the same sources while running.
	a.Reload = f.load
	return a, nil
}

type redisLogger struct{ log *zap.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

// runDaemon is the body of run, worker, scanner and monitor.
func runDaemon(cmd *cobra.Command, e env, f *configFlags, roles app.Roles) error {
	a, err := f.setup(cmd.Context(), e, roles.Name)
	if err != nil {
		return err
	}
	defer a.Close()
	defer func() { _ = a.Log.Sync() }()
	if (roles.Worker || roles.Scheduler) && len(a.Cfg.Marketplaces) == 0 {
		return &config.Error{Key: "marketplaces", Problem: "none configured; " + roles.Name + " needs at least one"}
	}
	err = a.Run(cmd.Context(), roles)
	for _, st := range a.SandboxStats() {
		a.Log.Info("embedded sandbox", zap.Int64("postings", st.Postings), zap.Int64("bids", st.Bids),
			zap.Int64("duplicate_bids", st.DuplicateBids))
	}
	return err
}

const daemonFlagsHelp = `
Configuration: --config FILE, else ./bidder.yaml, else configs/bidder.yaml, else
the built-in embedded config (in-process Redis and sandbox, data in memory).
Precedence: flag > environment (REDIS_URL, REDIS_HOST, BIDDER_HTTP_ADDR, ...) >
file > default. See docs/configuration.md.

HTTP (http.addr, loopback by default): / status page, /metrics, /healthz,
/readyz (503 with the reason until Redis answers and the roles started).

SIGINT/SIGTERM: stop scheduling, let running tasks finish within
worker.shutdown_timeout, release held locks, exit 0.`

func newRunCommand(e env) *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run every role in one process: scheduler, scan and bid workers, HTTP and the monitoring UI",
		Long: `Run every role in one process: the scan scheduler, the workers that scan
marketplaces and place bids, the HTTP listener with the asynqmon UI under
/monitoring/ and asynq's queue metrics.

With no config at all this is a self-contained demo: an in-process Redis and an
in-process sandbox marketplace, bids placed within seconds.` + daemonFlagsHelp,
		Example: `  # The whole system on a fresh machine, nothing to install
  go run ./cmd/bidder run
  open http://127.0.0.1:8080/ http://127.0.0.1:8080/monitoring/

  # Against a real Redis and marketplace
  REDIS_URL=redis://127.0.0.1:6379/0 SANDBOX_TOKEN=sandbox-token bidder run --config configs/single.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd, e, &f, app.Roles{Name: "run", Scheduler: true, Worker: true, Monitor: true})
		},
	}
	f.add(cmd, true)
	return cmd
}
