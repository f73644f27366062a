package main

import (
	"context"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/redisconn"
	buildinfo "github.com/bidder/bidder/internal/version"
)

// configFlags are the flags every command that reads the config takes.
type configFlags struct {
	path  string
	flags config.Flags
	cmd   *cobra.Command // the command they belong to: its stderr gets the log
}

func (f *configFlags) add(cmd *cobra.Command, daemon bool) {
	f.cmd = cmd
	cmd.Flags().StringVar(&f.path, "config", "", "config file (default: ./bidder.yaml, then configs/bidder.yaml, then the built-in demo config, which runs only on the in-process Redis)")
	cmd.Flags().StringVar(&f.flags.LogLevel, "log-level", "", "debug, info, warn or error (overrides log.level and BIDDER_LOG_LEVEL)")
	cmd.Flags().StringVar(&f.flags.LogFormat, "log-format", "", "auto (console on a terminal, JSON otherwise), json or console (overrides log.format and BIDDER_LOG_FORMAT)")
	if daemon {
		cmd.Flags().StringVar(&f.flags.HTTPAddr, "http-addr", "", "HTTP listen address; each process on one host needs its own, port 0 picks a free one (overrides http.addr and BIDDER_HTTP_ADDR)")
	}
}

func (f *configFlags) load() (config.Config, error) {
	reg, err := app.Adapters()
	if err != nil {
		return config.Config{}, err
	}
	return config.Load(config.Options{Path: f.path, Adapters: reg.Names(), Flags: f.flags})
}

// logger builds the logger cfg asks for, on the command's stderr, and
// routes go-redis' own log lines through it.
func (f *configFlags) logger(cfg config.Config) (*zap.Logger, error) {
	log, err := app.NewLogger(cfg.Log, f.cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	redisconn.RouteLogs(log)
	return log, nil
}

// setup loads the config, runs the start-up checks of roles and builds the
// logger and the App.
func (f *configFlags) setup(ctx context.Context, roles app.Roles) (*app.App, error) {
	cfg, err := f.load()
	if err != nil {
		return nil, err
	}
	if err := roles.Check(cfg); err != nil {
		return nil, err
	}
	log, err := f.logger(cfg)
	if err != nil {
		return nil, err
	}
	log = log.With(zap.String("role", roles.Name))
	a, err := app.New(ctx, cfg, log, buildinfo.Read(version).Short())
	if err != nil {
		_ = log.Sync()
		return nil, err
	}
	// Schedules are re-read from the same sources while running.
	a.Reload = f.load
	return a, nil
}

// runDaemon is the body of run, worker, scanner and monitor.
func runDaemon(cmd *cobra.Command, f *configFlags, role string) error {
	roles, err := app.DaemonRoles(role)
	if err != nil {
		return err
	}
	a, err := f.setup(cmd.Context(), roles)
	if err != nil {
		return err
	}
	defer a.Close()
	defer func() { _ = a.Log.Sync() }()
	err = a.Run(cmd.Context(), roles)
	for _, st := range a.SandboxStats() {
		a.Log.Info("embedded sandbox", zap.Int64("postings", st.Postings), zap.Int64("bids", st.Bids),
			zap.Int64("duplicate_bids", st.DuplicateBids))
	}
	return err
}

const daemonFlagsHelp = `
Configuration: --config FILE, else ./bidder.yaml, else configs/bidder.yaml, else
the built-in demo config (in-process Redis and sandbox, data in memory), which
only 'bidder run' uses and only without REDIS_URL/REDIS_HOST: a real Redis
needs a config file. Precedence: flag > environment (REDIS_URL, REDIS_HOST,
BIDDER_HTTP_ADDR, ...) > file > default. See docs/configuration.md.

Logs: console on a terminal, JSON otherwise (--log-format); one summary line
per marketplace every log.summary_interval (30s) from workers.

HTTP (http.addr, loopback by default): / status page, /metrics, /healthz,
/readyz (503 with the reason until Redis answers and the roles started).

SIGINT/SIGTERM: stop scheduling, let running tasks finish within
worker.shutdown_timeout, release held locks, exit 0. SIGHUP: the scheduler
(run, scanner) re-reads the schedules; other roles log it and go on.`

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
			return runDaemon(cmd, &f, "run")
		},
	}
	f.add(cmd, true)
	return cmd
}
