package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
)

// RoleEnv names the role a re-executed harness binary plays; RoleArgsEnv
// holds its arguments, separated by "\x1f". The harness runs the sandbox
// marketplace this way (see RunRole).
const (
	RoleEnv     = "BIDDER_CHAOS_ROLE"
	RoleArgsEnv = "BIDDER_CHAOS_ARGS"
)

// RunRole runs the role named in the environment, if any, and exits; it
// returns at once otherwise. Call it first thing in main or TestMain.
//
// Role "sandbox" is `bidder sandbox` (the same marketplace/sandbox server,
// flags and faults) plus two controls that command lacks: SIGUSR1 stops
// publishing new postings while the API keeps answering, so the harness can
// stop the flow of postings and then wait for every published one to be
// decided; and, with AdminFlag, the outage switch (outage.go).
func RunRole() {
	role := os.Getenv(RoleEnv)
	if role == "" {
		return
	}
	var args []string
	if a := os.Getenv(RoleArgsEnv); a != "" {
		args = strings.Split(a, "\x1f")
	}
	var err error
	switch role {
	case "sandbox":
		err = runSandbox(args)
	case "noop-worker":
		err = runNoopWorker(args)
	case "naive-worker":
		err = runNaiveWorker(args)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos role:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// AdminFlag and AdminTokenEnv are the harness-only control of the sandbox
// role: with --chaos-admin <addr> (taken off the arguments before the
// sandbox's own flags are parsed) the role also listens on addr for
// POST /outage, authenticated with the bearer token in AdminTokenEnv (see
// outageSwitch). The sandbox's own listener and HTTP contract are unchanged.
const (
	AdminFlag     = "--chaos-admin"
	AdminTokenEnv = "BIDDER_CHAOS_ADMIN_TOKEN"
)

func runSandbox(args []string) error {
	var adminAddr string
	rest := args[:0:0]
	for i := 0; i < len(args); i++ {
		if args[i] == AdminFlag && i+1 < len(args) {
			adminAddr = args[i+1]
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	var cfg sandbox.ServerConfig
	fs := pflag.NewFlagSet("sandbox", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	srv, err := sandbox.NewServer(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		<-usr1
		_ = srv.Close() // stops the generator only; the handler keeps answering
		fmt.Fprintf(os.Stderr, "sandbox: publishing stopped at %d postings\n", srv.Stats().Postings)
	}()
	var handler http.Handler = srv
	if adminAddr != "" {
		token := os.Getenv(AdminTokenEnv)
		if token == "" {
			return fmt.Errorf("%s needs %s", AdminFlag, AdminTokenEnv)
		}
		sw := &outageSwitch{next: srv}
		handler = sw
		aln, err := net.Listen("tcp", adminAddr)
		if err != nil {
			return fmt.Errorf("%s: %w", AdminFlag, err)
		}
		as := &http.Server{Handler: sw.admin(token, srv.BidOutcomes), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = as.Serve(aln) }()
		defer as.Close()
	}
	fmt.Fprintf(os.Stderr, "sandbox: listening on %s (idempotency=%s duplicates=%s latency=%s error=%g ambiguous=%g rate_limited=%g postings=%d rate=%g seed=%d admin=%q)\n",
		ln.Addr(), cfg.Idempotency, cfg.Duplicates, cfg.Latency.String(), cfg.ErrorRate, cfg.AmbiguousRate, cfg.RateLimitRate, cfg.Postings, cfg.Rate, cfg.Seed, adminAddr)
	err = srv.ServeHandler(ctx, ln, handler)
	st := srv.Stats()
	fmt.Fprintf(os.Stderr, "sandbox: stopped: %+v\n", st)
	return err
}

// runNoopWorker is the ceiling of the load figures: an asynq server on the
// same queue and concurrency as a bidder worker whose handler does nothing.
// Args: redis address, concurrency.
func runNoopWorker(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("noop-worker: want <redis addr> <concurrency>")
	}
	var conc int
	if _, err := fmt.Sscan(args[1], &conc); err != nil {
		return fmt.Errorf("noop-worker: concurrency: %w", err)
	}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: args[0]}, asynq.Config{
		Concurrency: conc, Queues: map[string]int{"bids": 6, "scans": 3},
		TaskCheckInterval: 200 * time.Millisecond, DelayedTaskCheckInterval: 200 * time.Millisecond,
		ShutdownTimeout: 3 * time.Second, LogLevel: asynq.WarnLevel,
	})
	return srv.Run(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
}

// runNaiveWorker is the handler a user would write without bidder (the
// baseline of issue 14's ratio): an asynq server on the same queues and
// concurrency whose handler decodes the bid task and POSTs the bid to the
// sandbox, with no lock, no ledger, no budget. Args: redis address,
// concurrency, sandbox URL.
func runNaiveWorker(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("naive-worker: want <redis addr> <concurrency> <sandbox url>")
	}
	var conc int
	if _, err := fmt.Sscan(args[1], &conc); err != nil {
		return fmt.Errorf("naive-worker: concurrency: %w", err)
	}
	ad, err := sandbox.New(marketplace.Config{ID: marketplaceMain, BaseURL: args[2], Token: sandboxToken, RequestTimeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("naive-worker: %w", err)
	}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: args[0]}, asynq.Config{
		Concurrency: conc, Queues: map[string]int{"bids": 6, "bids:" + marketplaceMain: 6, "scans": 3},
		TaskCheckInterval: 200 * time.Millisecond, DelayedTaskCheckInterval: 200 * time.Millisecond,
		ShutdownTimeout: 3 * time.Second, LogLevel: asynq.WarnLevel,
	})
	return srv.Run(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		p, err := worker.DecodeBidPayload(t.Payload())
		if err != nil {
			return err
		}
		_, err = ad.PlaceBid(ctx, p.ID, marketplace.Bid{Amount: p.Budget.Min, Currency: p.Budget.Currency, Proposal: "I can do " + p.Title + "."})
		return err
	}))
}

// redisProc starts redis-server as a Proc on a fixed port so that a restart
// comes back on the same address (and, with persistence, from its AOF).
func newRedisProc(bin, dataDir, logDir string, port int, persist bool) *Proc {
	args := []string{
		"--port", itoa(port), "--bind", "127.0.0.1", "--dir", dataDir,
		"--save", "", "--daemonize", "no", "--protected-mode", "no",
		"--maxmemory-policy", "noeviction",
	}
	if persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	return &Proc{Name: "redis", Bin: bin, Args: args, Dir: logDir}
}

// startRedis starts p and waits until Redis answers PING (not LOADING).
func startRedis(p *Proc, addr string) error {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = p.Start(); err != nil {
			return err
		}
		if err = waitRedis(addr, 15*time.Second, p.exitedChan()); err == nil {
			return nil
		}
		p.Kill()
		time.Sleep(100 * time.Millisecond) // the port may still be held
	}
	return fmt.Errorf("redis-server on %s: %w", addr, err)
}

func waitRedis(addr string, d time.Duration, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(d)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited while starting")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
