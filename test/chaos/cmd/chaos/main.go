// Command chaos runs the fault-injection harness of test/chaos for any
// duration, worker count and fault mix, prints the report and writes it as
// JSON.
//
//	go run ./test/chaos/cmd/chaos --duration 10m --workers 6 --json /tmp/chaos.json
//	go run ./test/chaos/cmd/chaos --no-persistence --duration 60s
//	go run ./test/chaos/cmd/chaos --faults kill_worker=1,stop_worker=1 --interval 3s
//	go run ./test/chaos/cmd/chaos --topology sentinel --duration 60s
//	go run ./test/chaos/cmd/chaos --topology sentinel --wait-replicas 0   # report only
//	go run ./test/chaos/cmd/chaos --duration 2m --max-retry 3 --two-fleets --shared-queue \
//	    --at freeze_worker_lease@1s,marketplace_outage:503-bids@15s+35s
//	go run ./test/chaos/cmd/chaos --topology sentinel --at replica_down:kill@8s+45s
//
// It exits 1 if an invariant failed (the report names the log directory),
// 2 if the run could not be carried out.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bidder/bidder/test/chaos"
)

func main() {
	chaos.RunRole() // this binary, re-executed, plays the sandbox

	cfg := chaos.StandardConfig()
	noPersist := flag.Bool("no-persistence", false, "Redis without persistence: report what a restart costs (duplicates reported, not failed)")
	faults := flag.String("faults", "default", "fault mix: default, none, or [default,]name=weight,... (standalone: "+chaos.DefaultMix.String()+"; sentinel: "+chaos.SentinelMix.String()+
		"; long faults, one of each kind at a time: freeze_worker_lease, marketplace_outage, replica_down)")
	topology := flag.String("topology", chaos.TopologyStandalone, "Redis topology: standalone (one redis-server, a TCP proxy per worker) or sentinel (1 master, --replicas replicas, 3 sentinels; no proxy faults)")
	replicas := flag.Int("replicas", 2, "replicas of the sentinel topology")
	waitReplicas := flag.Int("wait-replicas", -1, "ledger.wait_replicas of the sentinel topology; -1 = every replica (the safe setting, docs/redis.md); 0 = no WAIT, duplicates are then reported, not failed")
	jsonPath := flag.String("json", "", "write the report as JSON to this path")
	bidder := flag.String("bidder", "", "bidder binary (default: go build ./cmd/bidder into the log directory)")
	redisBin := flag.String("redis-server", "redis-server", "redis-server binary")
	keep := flag.Bool("keep", false, "keep the logs of a passing run")
	at := flag.String("at", "", "long faults at fixed offsets: kind[:variant]@offset[+duration],... (freeze_worker_lease; marketplace_outage:503|503-bids|401|401-bids|flaky; replica_down:stop|kill, sentinel only)")
	flag.IntVar(&cfg.MaxRetry, "max-retry", 0, "worker.max_retry of the workers (0: bidder's default); 3 makes a wait counted as a failure park postings within seconds")
	flag.BoolVar(&cfg.SharedQueue, "shared-queue", false, "worker.queue_per_marketplace: false (every bid task on the one \"bids\" queue)")
	flag.BoolVar(&cfg.TwoFleets, "two-fleets", false, "a second marketplace sandbox2; fleet A (--workers minus --fleet-b) serves both, fleet B only sandbox")
	flag.IntVar(&cfg.FleetB, "fleet-b", 1, "workers of fleet B (with --two-fleets)")
	flag.StringVar(&cfg.Accounts, "accounts", "", "bid from two accounts, alice and bob, under this account_policy: per_posting (agency mode) or per_account; the sandbox decides bids and the run waits for every outcome")
	flag.BoolVar(&cfg.Notify, "notify", false, "notifications on, to a webhook the harness serves: every bid_placed and review_needed must arrive, signed")
	flag.DurationVar(&cfg.ReviewDeadline, "review-deadline", 30*time.Minute, "rules.review.deadline with --review-share; short, the reviewers race it")
	flag.Float64Var(&cfg.ReviewShare, "review-share", 0, "send this share of the postings to review (rules.review.share); two reviewers approve and reject them with the CLI during the faults")
	flag.DurationVar(&cfg.FleetBPoll, "fleet-b-poll", time.Second, "worker.poll_interval of fleet B (the others poll every 200ms)")
	flag.DurationVar(&cfg.Duration, "duration", 45*time.Second, "publishing and fault phase")
	flag.IntVar(&cfg.Workers, "workers", 4, "bidder worker processes")
	flag.IntVar(&cfg.Scanners, "scanners", 2, "bidder scanner processes")
	flag.IntVar(&cfg.Concurrency, "concurrency", 10, "worker.concurrency of each worker")
	flag.IntVar(&cfg.InitialPostings, "postings", 500, "postings published at start")
	flag.Float64Var(&cfg.Rate, "rate", 40, "postings published per second")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "seed of postings, sandbox faults and injected faults")
	flag.DurationVar(&cfg.FaultInterval, "interval", 1500*time.Millisecond, "mean time between injected faults")
	flag.StringVar(&cfg.SandboxLatency, "latency", "1ms..50ms", "sandbox latency")
	flag.Float64Var(&cfg.ErrorRate, "error-rate", 0.05, "sandbox 503 rate")
	flag.Float64Var(&cfg.AmbiguousRate, "ambiguous-rate", 0.10, "sandbox ambiguous bid answer rate")
	flag.Float64Var(&cfg.RateLimitRate, "rate-limit-rate", 0.02, "sandbox 429 rate")
	flag.DurationVar(&cfg.LockTTL, "lock-ttl", 2*time.Second, "lock.ttl of the workers")
	flag.DurationVar(&cfg.SettleDelay, "settle-delay", 2*time.Second, "worker.settle_delay (must exceed --request-timeout)")
	flag.DurationVar(&cfg.RequestTimeout, "request-timeout", time.Second, "the sandbox adapter's request_timeout")
	flag.DurationVar(&cfg.DrainTimeout, "drain-timeout", 3*time.Minute, "how long the queues may take to drain")
	flag.StringVar(&cfg.LogDir, "logs", "", "log directory (default: a new temp dir)")
	flag.StringVar(&cfg.Scenario, "scenario", "", "scenario name (default persistent / no-persistence)")
	flag.Parse()

	if *noPersist {
		cfg.Persistence, cfg.AllowDuplicates = false, true
	}
	switch *topology {
	case chaos.TopologyStandalone:
	case chaos.TopologySentinel:
		cfg.Topology, cfg.Replicas, cfg.WaitReplicas = chaos.TopologySentinel, *replicas, *waitReplicas
		if cfg.WaitReplicas < 0 {
			cfg.WaitReplicas = cfg.Replicas
		}
		if cfg.WaitReplicas == 0 {
			cfg.AllowDuplicates = true
		}
	default:
		fatal(2, "--topology: want standalone or sentinel, got %q", *topology)
	}
	if cfg.Scenario == "" {
		cfg.Scenario = map[bool]string{true: "persistent", false: "no-persistence"}[cfg.Persistence]
		if cfg.Topology == chaos.TopologySentinel {
			cfg.Scenario = fmt.Sprintf("sentinel-wait%d", cfg.WaitReplicas)
		}
	}
	mix, err := chaos.ParseMix(*faults)
	if err != nil {
		fatal(2, "--faults: %v", err)
	}
	cfg.Mix = mix
	if *faults == "default" && cfg.Topology == chaos.TopologySentinel {
		cfg.Mix = chaos.SentinelMix
	}
	if cfg.Schedule, err = chaos.ParseSchedule(*at); err != nil {
		fatal(2, "--at: %v", err)
	}
	if cfg.RedisBin, err = exec.LookPath(*redisBin); err != nil {
		fatal(2, "redis-server: %v", err)
	}
	if cfg.SelfBin, err = os.Executable(); err != nil {
		fatal(2, "%v", err)
	}
	cfg.BidderBin = *bidder
	if cfg.BidderBin == "" {
		dir, err := os.MkdirTemp("", "bidder-chaos-bin-")
		if err != nil {
			fatal(2, "%v", err)
		}
		defer os.RemoveAll(dir)
		cfg.BidderBin = filepath.Join(dir, "bidder")
		out, err := exec.Command("go", "build", "-o", cfg.BidderBin, "github.com/bidder/bidder/cmd/bidder").CombinedOutput()
		if err != nil {
			fatal(2, "go build ./cmd/bidder (run from the repository, or pass --bidder): %v\n%s", err, out)
		}
	}
	cfg.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		fatal(2, "chaos: %v", err)
	}
	if rep.Passed && !*keep {
		rep.RemoveLogs()
	}
	fmt.Print(rep.String())
	if *jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
			fatal(2, "write %s: %v", *jsonPath, err)
		}
	}
	if !rep.Passed {
		fmt.Fprintf(os.Stderr, "chaos: FAILED; every process's log is in %s\n", rep.LogDir)
		os.Exit(1)
	}
}

func fatal(code int, f string, a ...any) {
	fmt.Fprintf(os.Stderr, f+"\n", a...)
	os.Exit(code)
}
