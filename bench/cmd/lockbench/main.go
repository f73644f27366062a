// Command lockbench compares bidder's lock (package lock) with raw go-redis,
// bsm/redislock and redsync on one workload: acquire + release of a fresh
// posting per cycle, from N goroutines, against one redis-server.
//
//	cd bench && go run ./cmd/lockbench [--duration 3s] [--goroutines 1,64] [--rounds 2]
//
// Without --redis-addr it starts its own redis-server (free loopback port,
// no persistence, temp dir) and kills it at the end; it then also reads the
// server's CPU time from /proc/<pid>/stat around every case. Rounds are
// interleaved (every implementation runs once per round, in a rotated order)
// so that load from elsewhere on the machine hits all of them alike.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

type config struct {
	redisAddr   string
	redisBin    string
	duration    time.Duration
	warmup      time.Duration
	goroutines  []int
	rounds      int
	pick        string
	impls       []string
	poolSize    int
	jsonPath    string
	cpuProfile  string
	allowShared bool
	prefill     int
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("lockbench", flag.ContinueOnError)
	var c config
	var gs, impls string
	fs.StringVar(&c.redisAddr, "redis-addr", "", "Redis to use; empty: start a private redis-server on a free loopback port")
	fs.StringVar(&c.redisBin, "redis-server", "", "redis-server binary (default: from PATH)")
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "measured time per case")
	fs.DurationVar(&c.warmup, "warmup", 300*time.Millisecond, "unmeasured run before each case (fills the pool, loads scripts)")
	fs.StringVar(&gs, "goroutines", "1,64", "comma-separated concurrency levels")
	fs.IntVar(&c.rounds, "rounds", 2, "interleaved rounds; every case runs once per round")
	fs.StringVar(&c.pick, "pick", "best", "round reported per case: best (highest cycles/s) or median")
	fs.StringVar(&impls, "impls", defaultImpls, "implementations to run: bidder, raw, redislock, redsync, and the diagnostic raw+fence (bidder's acquire script without the lock package)")
	fs.IntVar(&c.poolSize, "pool-size", 0, "go-redis PoolSize of every client (0: max(64, largest goroutines))")
	fs.StringVar(&c.jsonPath, "json", "", "also write every round's results as JSON to this file")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured cases to this file (use with --impls to profile one)")
	fs.IntVar(&c.prefill, "prefill", 0, "own server only: before each case, create this many keys with a 7-day expiry (like the fence counters a production keyspace holds), so every implementation runs against a large keyspace, not only bidder")
	fs.BoolVar(&c.allowShared, "allow-6379", false, "allow --redis-addr on port 6379 (the machine's shared Redis is never a benchmark target)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if c.goroutines, err = parseInts(gs); err != nil {
		return c, fmt.Errorf("--goroutines: %w", err)
	}
	for _, name := range strings.Split(impls, ",") {
		name = strings.TrimSpace(name)
		if !slices.ContainsFunc(allImpls, func(i impl) bool { return i.name == name }) {
			return c, fmt.Errorf("--impls: unknown %q", name)
		}
		c.impls = append(c.impls, name)
	}
	if c.rounds < 1 || c.duration <= 0 {
		return c, errors.New("--rounds and --duration must be positive")
	}
	if c.pick != "best" && c.pick != "median" {
		return c, errors.New("--pick: best or median")
	}
	if c.poolSize <= 0 {
		c.poolSize = max(64, slices.Max(c.goroutines))
	}
	if c.redisAddr != "" && !c.allowShared {
		if _, port, err := net.SplitHostPort(c.redisAddr); err == nil && port == "6379" {
			return c, errors.New("--redis-addr: refusing port 6379, the machine's shared Redis (omit --redis-addr to get a private server)")
		}
	}
	return c, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad value %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// bench is the state of one run.
type bench struct {
	cfg     config
	admin   *redis.Client // FLUSHDB and INFO, never used by a case
	srv     *server       // nil with --redis-addr
	runID   string
	cycles  map[string]cycleFunc
	clients []*redis.Client
}

func run(cfg config) error {
	b := &bench{cfg: cfg, runID: strconv.FormatUint(rand.Uint64()&0xffffff, 16), cycles: map[string]cycleFunc{}}
	addr := cfg.redisAddr
	if addr == "" {
		s, err := startServer(cfg.redisBin)
		if err != nil {
			return err
		}
		b.srv = s
		defer s.stop()
		addr = s.addr
		// Kill the server on Ctrl-C too (Pdeathsig covers harder deaths).
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() { <-sig; s.stop(); os.Exit(130) }()
	}
	b.admin = redis.NewClient(&redis.Options{Addr: addr})
	defer b.admin.Close()
	ctx := context.Background()
	version, _ := serverVersion(ctx, b.admin)

	// One client per implementation, all with the same options.
	for _, name := range cfg.impls {
		rdb := newClient(addr, cfg.poolSize)
		b.clients = append(b.clients, rdb)
		b.cycles[name] = implByName(name).setup(rdb)
	}
	defer func() {
		for _, c := range b.clients {
			c.Close()
		}
	}()

	fmt.Printf("lockbench: redis %s at %s (%s), GOMAXPROCS=%d, NumCPU=%d, %s per case, warmup %s, rounds %d (report: %s round), pool size %d, prefill %d keys\n",
		version, addr, map[bool]string{true: "own server, CPU from /proc", false: "external, CPU from INFO"}[b.srv != nil],
		runtime.GOMAXPROCS(0), runtime.NumCPU(), cfg.duration, cfg.warmup, cfg.rounds, cfg.pick, cfg.poolSize, cfg.prefill)

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	var all []result
	for round := 1; round <= cfg.rounds; round++ {
		for gi, g := range cfg.goroutines {
			// Rotate the order per round and level so no implementation
			// always runs first (after a flush) or last.
			order := rotate(cfg.impls, round-1+gi)
			for _, name := range order {
				r, err := b.runCase(ctx, name, g, round)
				if err != nil {
					return err
				}
				fmt.Printf("  round %d  %-10s g=%-3d %9.0f cycles/s  p50 %-9s p99 %-9s redis %.1fµs/cyc  client %.1fµs/cyc  errors %d\n",
					round, name, g, r.perSec(), fmtDur(r.P50), fmtDur(r.P99), r.serverUsPerCycle(), r.clientUsPerCycle(), r.Errors)
				if r.Commands != nil {
					fmt.Printf("    redis exec per cycle: %s\n", r.commandBreakdown(implByName(name).sent))
				}
				if r.FirstError != "" {
					fmt.Printf("    first error: %s\n", r.FirstError)
				}
				all = append(all, r)
			}
		}
	}

	chosen := pick(all, cfg.pick)
	fmt.Printf("\n%s round of %d per case (x/bidder > 1: the peer is faster; bidder/x is the target ratio)\n", cfg.pick, cfg.rounds)
	writeTable(os.Stdout, chosen, cfg.goroutines, cfg.impls)
	fmt.Println("\ncycles/s of every round:")
	writeRounds(os.Stdout, all, cfg.goroutines, cfg.impls)
	ts := targets(chosen)
	fmt.Println("\ntargets:")
	writeTargets(os.Stdout, ts)

	if cfg.jsonPath != "" {
		out := struct {
			RedisVersion string    `json:"redis_version"`
			GOMAXPROCS   int       `json:"gomaxprocs"`
			Duration     string    `json:"duration"`
			Rounds       int       `json:"rounds"`
			Pick         string    `json:"pick"`
			PoolSize     int       `json:"pool_size"`
			All          []result  `json:"all_rounds"`
			Chosen       []result  `json:"chosen"`
			Targets      []target  `json:"targets"`
			At           time.Time `json:"at"`
		}{version, runtime.GOMAXPROCS(0), cfg.duration.String(), cfg.rounds, cfg.pick, cfg.poolSize, all, chosen, ts, time.Now().UTC()}
		buf, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonPath, append(buf, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func rotate(s []string, n int) []string {
	n %= len(s)
	return append(slices.Clone(s[n:]), s[:n]...)
}

func serverVersion(ctx context.Context, rdb *redis.Client) (string, error) {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "?", err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v, nil
		}
	}
	return "?", nil
}

func (b *bench) serverCPU(ctx context.Context) (time.Duration, error) {
	if b.srv != nil {
		return procCPU(b.srv.pid())
	}
	return infoCPU(ctx, b.admin)
}

// runCase warms up, then measures one implementation at g goroutines.
func (b *bench) runCase(ctx context.Context, name string, g, round int) (result, error) {
	cycle := b.cycles[name]
	if b.srv != nil {
		// Every case starts from an empty keyspace (bidder's fence
		// counters would otherwise pile up for the cases after it).
		if err := b.admin.FlushDB(ctx).Err(); err != nil {
			return result{}, err
		}
		if err := b.prefill(ctx); err != nil {
			return result{}, err
		}
	}
	prefix := fmt.Sprintf("%s-r%d-g%d-%s-", b.runID, round, g, name)
	b.load(ctx, cycle, g, prefix+"w", b.cfg.warmup)
	runtime.GC() // the warmup's garbage is not this case's to collect

	if b.srv != nil {
		if err := b.admin.ConfigResetStat(ctx).Err(); err != nil {
			return result{}, err
		}
	}
	srv0, err := b.serverCPU(ctx)
	if err != nil {
		return result{}, fmt.Errorf("server cpu: %w", err)
	}
	cli0 := selfCPU()
	lat, errs, firstErr, elapsed := b.load(ctx, cycle, g, prefix, b.cfg.duration)
	cli1 := selfCPU()
	srv1, err := b.serverCPU(ctx)
	if err != nil {
		return result{}, fmt.Errorf("server cpu: %w", err)
	}
	r := result{
		Impl: name, Goroutines: g, Round: round,
		Cycles: int64(len(lat)), Errors: errs, Elapsed: elapsed,
		ServerCPU: srv1 - srv0, ClientCPU: cli1 - cli0,
	}
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	if b.srv != nil {
		info, err := b.admin.Info(ctx, "commandstats").Result()
		if err != nil {
			return result{}, err
		}
		r.Commands = parseCommandStats(info)
		for _, name := range implByName(name).sent {
			r.ExecUsec += r.Commands[name].Usec
		}
	}
	r.P50, r.P99 = percentiles(lat)
	return r, nil
}

// prefill writes cfg.prefill filler keys in pipelined batches.
func (b *bench) prefill(ctx context.Context) error {
	const batch = 1000
	for i := 0; i < b.cfg.prefill; i += batch {
		p := b.admin.Pipeline()
		for j := i; j < min(i+batch, b.cfg.prefill); j++ {
			p.Set(ctx, "prefill:"+strconv.Itoa(j), j, 7*24*time.Hour)
		}
		if _, err := p.Exec(ctx); err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
	}
	return nil
}

// load runs cycle from g goroutines for d, each cycle on a fresh posting
// prefix+<n>. It returns the latencies of the successful cycles.
func (b *bench) load(ctx context.Context, cycle cycleFunc, g int, prefix string, d time.Duration) (lat []time.Duration, errs int64, firstErr error, elapsed time.Duration) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next = make(chan struct{}) // closed once every goroutine exists
		// deadline is set before next is closed, read only after.
		start, deadline time.Time
	)
	for w := range g {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1<<14)
			var nErr int64
			var first error
			wp := prefix + strconv.Itoa(w) + "-"
			<-next
			for n := 0; ; n++ {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				err := cycle(ctx, wp+strconv.Itoa(n))
				dt := time.Since(t0)
				if err != nil {
					nErr++
					if first == nil {
						first = err
					}
					continue
				}
				local = append(local, dt)
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += nErr
			if firstErr == nil {
				firstErr = first
			}
			mu.Unlock()
		})
	}
	start = time.Now()
	deadline = start.Add(d)
	close(next)
	wg.Wait()
	return lat, errs, firstErr, time.Since(start)
}
