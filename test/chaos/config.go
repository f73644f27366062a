package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Fault names, as counted in the report and accepted by ParseMix.
const (
	FaultKillWorker     = "kill_worker"     // SIGKILL a worker, start it again after a moment
	FaultKillScanner    = "kill_scanner"    // SIGKILL a scanner, start it again
	FaultStopWorker     = "stop_worker"     // SIGSTOP a worker for longer than the lock TTL, then SIGCONT
	FaultKillRedis      = "kill_redis"      // SIGKILL redis-server, start it again on the same port
	FaultProxyLatency   = "proxy_latency"   // a worker's Redis proxy adds latency for a window
	FaultProxyCut       = "proxy_cut"       // a worker's Redis proxy resets every connection
	FaultProxyBlackhole = "proxy_blackhole" // a worker's Redis proxy forwards nothing for a window
	// FaultRedeliver enqueues a second copy of every active and pending bid
	// task (another task ID, same payload): what asynq does when a lease
	// looks expired (asynq-facts.md), without waiting its 30 s lease out.
	// stop_worker also does it once the stopped worker's locks have
	// expired, so that a second worker really takes over its postings.
	FaultRedeliver = "redeliver"
	// FaultKillMaster (topology sentinel): SIGKILL the node the sentinels
	// name as master, wait for them to promote a replica, then start the
	// old master again as a replica of the new one.
	FaultKillMaster = "kill_master"

	// The long faults (faults_long.go) last 30 s to 2.5 min, run in the
	// background, and at most one of each kind runs at a time.

	// FaultFreezeWorkerLease SIGSTOPs a worker that has active bid tasks
	// until asynq itself (lease expired, recoverer pass) has handed them to
	// other workers and they decided them; no harness copies. Then SIGCONT.
	FaultFreezeWorkerLease = "freeze_worker_lease"
	// FaultMarketplaceOutage makes the sandbox answer every request with 503
	// (variant "503"), 401 ("401"), or 503 to 60% of them ("flaky"); the
	// "-bids" variants refuse only the bid endpoints, so that scans go on
	// and bids meet the outage. Through a harness-only switch of the sandbox
	// role (outage.go), not the sandbox's HTTP contract.
	FaultMarketplaceOutage = "marketplace_outage"
	// FaultReplicaDown (topology sentinel) SIGSTOPs ("stop") or SIGKILLs
	// ("kill", restarted as a replica afterwards) one replica: with
	// ledger.wait_replicas = every replica no intent can be acknowledged, so
	// bidding must pause, and resume once it is back.
	FaultReplicaDown = "replica_down"
)

// longFaults are the faults of faults_long.go, with their variants (the
// first is the default).
var longFaults = map[string][]string{
	FaultFreezeWorkerLease: {""},
	FaultMarketplaceOutage: {"503", "503-bids", "401", "401-bids", "flaky"},
	FaultReplicaDown:       {"stop", "kill"},
}

// Topologies of the Redis the harness runs.
const (
	TopologyStandalone = "standalone" // one redis-server, each worker behind its own TCP proxy
	TopologySentinel   = "sentinel"   // 1 master + replicas + 3 sentinels; no proxies
)

// proxyFaults need the per-worker TCP proxy, which only the standalone
// topology has.
var proxyFaults = []string{FaultProxyLatency, FaultProxyCut, FaultProxyBlackhole}

// SentinelMix is the fault mix of the sentinel scenario: the standalone
// mix without the proxy faults, kill_master in place of kill_redis.
var SentinelMix = Mix{
	FaultKillWorker: 3, FaultKillScanner: 1, FaultStopWorker: 3, FaultKillMaster: 4, FaultRedeliver: 2,
}

// knownFault reports whether name is a fault of any topology.
func knownFault(name string) bool {
	_, a := DefaultMix[name]
	_, b := SentinelMix[name]
	_, c := longFaults[name]
	return a || b || c
}

// knownFaults lists every fault name, for error messages.
func knownFaults() string {
	m := Mix{}
	for _, mix := range []Mix{DefaultMix, SentinelMix} {
		for k := range mix {
			m[k] = 1
		}
	}
	for k := range longFaults {
		m[k] = 1
	}
	return strings.Join(m.Names(), ", ")
}

// DefaultMix is the fault mix of the standard scenarios (relative weights).
var DefaultMix = Mix{
	FaultKillWorker: 3, FaultKillScanner: 1, FaultStopWorker: 3, FaultKillRedis: 1,
	FaultProxyLatency: 2, FaultProxyCut: 2, FaultProxyBlackhole: 2, FaultRedeliver: 2,
}

// Mix weighs the faults the injector picks from.
type Mix map[string]int

// ParseMix reads "kill_worker=3,stop_worker=2,..." ("" or "none" = no
// faults); "default" stands for DefaultMix and may be followed by more
// weights ("default,freeze_worker_lease=1").
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return m, nil
	}
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "default" {
			for k, v := range DefaultMix {
				m[k] = v
			}
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			v = "1"
		}
		if !knownFault(k) {
			return nil, fmt.Errorf("unknown fault %q (known: %s)", k, knownFaults())
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("fault %s: bad weight %q", k, v)
		}
		m[k] = n
	}
	return m, nil
}

// Names returns the fault names in a stable order.
func (m Mix) Names() []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (m Mix) String() string {
	var parts []string
	for _, k := range m.Names() {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// Config is one chaos run.
type Config struct {
	Scenario  string // a name for the report
	BidderBin string // the bidder binary (built from ./cmd/bidder)
	SelfBin   string // a binary that calls RunRole first (runs the sandbox role)
	RedisBin  string // redis-server

	Workers     int // bidder worker processes (default 4)
	Scanners    int // bidder scanner processes (default 2)
	Concurrency int // worker.concurrency of each worker (default 10)

	Duration        time.Duration // publishing and fault phase (default 45s)
	InitialPostings int           // published at start (default 500)
	Rate            float64       // postings per second while publishing (default 40)
	Seed            uint64        // postings, sandbox faults and injected faults (default 1)

	// Persistence: redis-server with appendonly yes, appendfsync always.
	// Off, a Redis restart loses every lock, fence counter, ledger record,
	// cursor and queued task.
	Persistence bool

	// Topology: TopologyStandalone ("" = standalone) or TopologySentinel.
	// Sentinel runs 1 master, Replicas replicas and 3 sentinels (quorum 2),
	// every node with the persistence above; bidder reaches them through
	// redis.sentinel, so there is no per-worker proxy and no proxy fault.
	Topology string
	Replicas int // replicas of the sentinel topology (default 2)
	// WaitReplicas is ledger.wait_replicas of the sentinel topology (0 =
	// no WAIT); WaitTimeout its ledger.wait_timeout (default 200ms).
	WaitReplicas int
	WaitTimeout  time.Duration

	Mix           Mix           // fault weights (nil: DefaultMix; empty: no faults)
	FaultInterval time.Duration // mean time between injected faults (default 1.5s)
	// Schedule injects faults at fixed offsets into the fault phase, besides
	// the seeded picks from Mix: how a short run makes sure it reaches each
	// long fault once. The phase lasts until every scheduled fault is over.
	Schedule []Scheduled

	// MaxRetry is the workers' worker.max_retry (0: bidder's default). The
	// long-fault scenarios set it low (3: about 4-7 s of counted retries),
	// so that an outage or a replica down counted as failures would park
	// postings within the fault, and flaky answers do park some.
	MaxRetry int
	// SharedQueue sets worker.queue_per_marketplace: false: every bid task
	// goes to the one "bids" queue, whatever its marketplace.
	SharedQueue bool
	// TwoFleets adds a second sandbox, marketplace "sandbox2", and splits the
	// workers: fleet A (the first Workers-FleetB) is configured for sandbox
	// and sandbox2, fleet B only for sandbox. With SharedQueue fleet B takes
	// sandbox2 tasks too and must leave them for fleet A.
	TwoFleets bool
	FleetB    int // workers of fleet B (default 1)
	// FleetBPoll is fleet B's worker.poll_interval (default 1s, bidder's
	// own default; the harness's other workers poll every 200ms). Each
	// sandbox2 task fleet B takes waits 30 s before anyone retries it, and
	// an idle worker that polls as often as fleet A took 35-55% of them,
	// which drew the drain out to 100-130 s.
	FleetBPoll time.Duration
	// RecoveryEvery and RecoveryAfter are recovery.every and recovery.after
	// (0: bidder's defaults, 1m and 10m, which a short run never reaches).
	// Run sets 10s and 1m, the shortest after allowed, so that a posting
	// left undecided without a task is enqueued again within the run.
	RecoveryEvery, RecoveryAfter time.Duration

	// Sandbox faults (strict mode is always on: idempotency off, duplicates accept).
	SandboxLatency string  // default "1ms..50ms"
	ErrorRate      float64 // default 0.05
	AmbiguousRate  float64 // default 0.10
	RateLimitRate  float64 // default 0.02

	LockTTL        time.Duration // lock.ttl (default 2s)
	SettleDelay    time.Duration // worker.settle_delay (default 2s; must exceed RequestTimeout)
	RequestTimeout time.Duration // the sandbox adapter's request_timeout (default 1s)
	DrainTimeout   time.Duration // after publishing stops (default 150s)

	LogDir string // where every process logs (default: a new temp dir)
	// AllowDuplicates: the run reports duplicate bids instead of failing on
	// them (the no-persistence scenario, where they are the finding).
	AllowDuplicates bool
	// BidAll drops the rules that skip some postings (a keyword, a client
	// rating), so that every posting gets a bid (load runs).
	BidAll bool
	// ReviewShare sends this share of the postings the rules would bid on
	// to review (rules.review.share), and two reviewers approve and reject
	// them with the CLI during the fault phase (review.go).
	ReviewShare float64
	// ReviewDeadline is rules.review.deadline (default 30m); short, the
	// deadline races the reviewers and the recovery pass expires postings.
	ReviewDeadline time.Duration
	// Notify turns notifications on, to a webhook the harness serves
	// (notify.go): every placed posting's bid_placed and every reviewed
	// one's review_needed must reach it, signed, through every fault.
	Notify bool
	// Accounts bids on the main marketplace from two accounts, alice and
	// bob, under bidder's account_policy (AccountsPerPosting: agency mode;
	// AccountsPerAccount), with the sandbox deciding bids 2 s after them
	// and the tracker on: the run checks "never twice" at the policy's
	// level and that every placed bid's outcome is recorded by the end
	// (accounts.go). "" = the one-token marketplace.
	Accounts string
	Logf     func(format string, args ...any) // progress (default: none)

	notifyURL, notifySecretFile, notifySlackFile string // set by the harness (Notify)
}

// After the drain, how long a run waits for every notification to arrive
// (Notify) and for the tracker to record every bid's outcome (Accounts:
// it runs once a minute, so two slots and a repoll).
const (
	NotifyWait   = 90 * time.Second
	AccountsWait = 200 * time.Second
)

// RunTimeout is how long a whole run may take: publishing, the drain, the
// waits after it and a margin for starting and checking. A caller's
// context shorter than this cuts the final checks off, and the report then
// shows context errors instead of what was not yet done.
func (c Config) RunTimeout() time.Duration {
	c.defaults()
	d := c.Duration + c.DrainTimeout + 2*time.Minute
	if c.Notify {
		d += NotifyWait
	}
	if c.Accounts != "" {
		d += AccountsWait
	}
	return d
}

func (c *Config) defaults() {
	if c.Scenario == "" {
		c.Scenario = "custom"
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Scanners <= 0 {
		c.Scanners = 2
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 10
	}
	if c.Duration <= 0 {
		c.Duration = 45 * time.Second
	}
	if c.InitialPostings < 0 {
		c.InitialPostings = 0
	}
	if c.Rate < 0 {
		c.Rate = 0
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Topology == "" {
		c.Topology = TopologyStandalone
	}
	if c.Replicas <= 0 {
		c.Replicas = 2
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = 200 * time.Millisecond
	}
	if c.Mix == nil {
		c.Mix = DefaultMix
		if c.Topology == TopologySentinel {
			c.Mix = SentinelMix
		}
	}
	if c.FaultInterval <= 0 {
		c.FaultInterval = 1500 * time.Millisecond
	}
	if c.SandboxLatency == "" {
		c.SandboxLatency = "1ms..50ms"
	}
	if c.LockTTL <= 0 {
		c.LockTTL = 2 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = time.Second
	}
	if c.SettleDelay <= 0 {
		c.SettleDelay = 2 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 150 * time.Second
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.TwoFleets && (c.FleetB <= 0 || c.FleetB >= c.Workers) {
		c.FleetB = max(1, min(c.FleetB, c.Workers-1))
	}
	if c.FleetBPoll <= 0 {
		c.FleetBPoll = time.Second
	}
}

// StandardConfig is the persistent scenario with every fault and the
// sandbox's strict mode with faults; callers set the binaries.
func StandardConfig() Config {
	return Config{
		Scenario: "persistent", Persistence: true, Mix: DefaultMix,
		ErrorRate: 0.05, AmbiguousRate: 0.10, RateLimitRate: 0.02,
		InitialPostings: 500, Rate: 40,
	}
}

// NoPersistenceConfig is the same run on a Redis without persistence: every
// Redis restart forgets locks, fences, ledger, cursors and queues.
func NoPersistenceConfig() Config {
	c := StandardConfig()
	c.Scenario = "no-persistence"
	c.Persistence = false
	c.AllowDuplicates = true
	return c
}

// SentinelConfig is the sentinel scenario: the standard sandbox faults and
// persistence, 1 master + 2 replicas + 3 sentinels, ledger WAIT on every
// replica, and SentinelMix. A duplicate bid fails the run. (WAIT 1 of 2 lost
// intents in a cascade of failovers; see docs/chaos.md.)
func SentinelConfig() Config {
	c := StandardConfig()
	c.Scenario = "sentinel"
	c.Topology = TopologySentinel
	c.Replicas = 2
	c.WaitReplicas = 2
	c.Mix = SentinelMix
	return c
}

// topologyMix drops the faults the topology cannot inject and says which.
func (c *Config) topologyMix() (Mix, []string) {
	out := Mix{}
	var dropped []string
	for k, v := range c.Mix {
		drop := false
		switch c.Topology {
		case TopologySentinel:
			drop = k == FaultKillRedis || slices.Contains(proxyFaults, k)
		default:
			drop = k == FaultKillMaster || k == FaultReplicaDown
		}
		if drop {
			if v > 0 {
				dropped = append(dropped, k)
			}
			continue
		}
		out[k] = v
	}
	sort.Strings(dropped)
	return out, dropped
}

// redisYAML is the redis and ledger part of bidder.yaml: nothing for the
// standalone topology (REDIS_URL in the environment points at the worker's
// proxy), the sentinels and WAIT for the sentinel topology.
func (c *Config) redisYAML(sentinelAddrs []string) string {
	if c.Topology != TopologySentinel {
		return ""
	}
	s := fmt.Sprintf(`redis:
  sentinel:
    master_name: %s
    addrs: [%s]
  dial_timeout: 500ms
  read_timeout: 2s
  write_timeout: 2s
`, sentinelMasterName, strings.Join(sentinelAddrs, ", "))
	if c.WaitReplicas > 0 {
		s += fmt.Sprintf("ledger:\n  wait_replicas: %d\n  wait_timeout: %s\n", c.WaitReplicas, c.WaitTimeout)
	}
	return s
}

// Marketplace IDs the harness runs: the sandbox, and with TwoFleets a
// second sandbox process under "sandbox2".
const (
	marketplaceMain   = "sandbox"
	marketplaceSecond = "sandbox2"
)

// bidderYAML is the config of the scanners and of fleet A: every
// marketplace in urls (ID -> sandbox URL), in the order of ids.
func (c *Config) bidderYAML(ids []string, urls map[string]string, sentinelAddrs ...string) string {
	return c.bidderYAMLPoll(200*time.Millisecond, ids, urls, sentinelAddrs...)
}

// bidderYAMLPoll is bidderYAML with worker.poll_interval poll.
func (c *Config) bidderYAMLPoll(poll time.Duration, ids []string, urls map[string]string, sentinelAddrs ...string) string {
	s := c.redisYAML(sentinelAddrs) + fmt.Sprintf(`# written by test/chaos for scenario %q
lock:
  ttl: %s
worker:
  concurrency: %d
  queues: {bids: 6, scans: 3}
  settle_delay: %s
  shutdown_timeout: 3s
  poll_interval: %s
`, c.Scenario, c.LockTTL, c.Concurrency, c.SettleDelay, poll)
	if c.MaxRetry > 0 {
		s += fmt.Sprintf("  max_retry: %d\n", c.MaxRetry)
	}
	if c.SharedQueue {
		s += "  queue_per_marketplace: false\n"
	}
	if c.RecoveryEvery > 0 {
		s += fmt.Sprintf("recovery:\n  every: %s\n  after: %s\n", c.RecoveryEvery, max(c.RecoveryAfter, time.Minute))
	}
	s += `http:
  addr: 127.0.0.1:0
  monitoring:
    enabled: false
log:
  level: info
  format: json
` + c.notifyYAML() + c.trackerYAML() + `marketplaces:
`
	for _, id := range ids {
		s += c.marketplaceEntry(id, urls[id])
	}
	return s
}

func (c *Config) marketplaceYAML(id, sandboxURL string) string {
	exclude, minRating := `"video call"`, 2.0
	if c.BidAll {
		exclude, minRating = "", 0
	}
	return fmt.Sprintf(`  - id: %s
    adapter: sandbox
    base_url: %s
    token_env: BIDDER_CHAOS_SANDBOX_TOKEN
    request_timeout: %s
    scan:
      schedule: "@every 1s"
      page_size: 500
      requests_per_second: 50
    rules:
      max_age: 720h
      keywords:
        exclude: [%s]
      client:
        min_rating: %g
      bid_budget:
        per_hour: 0
      amount:
        fixed: {strategy: percent, percent: 90, min_amount: 50, max_amount: 5000}
        hourly: {strategy: range_point, point: 0.75, min_amount: 20, max_amount: 150}
      proposal:
        template: "Hello, I read {{.Title}} and can deliver it for {{money .Amount}} {{.Budget.Currency}}."
`, id, sandboxURL, c.RequestTimeout, exclude, minRating) + c.reviewYAML()
}

// marketplaceEntry is marketplaceYAML with the main marketplace's token
// replaced by the run's two accounts (Accounts).
func (c *Config) marketplaceEntry(id, sandboxURL string) string {
	s := c.marketplaceYAML(id, sandboxURL)
	if id == marketplaceMain && c.Accounts != "" {
		s = strings.Replace(s, "    token_env: BIDDER_CHAOS_SANDBOX_TOKEN\n", c.accountsYAML(), 1)
	}
	return s
}

func (c *Config) reviewYAML() string {
	if c.ReviewShare <= 0 {
		return ""
	}
	deadline := c.ReviewDeadline
	if deadline <= 0 {
		deadline = 30 * time.Minute
	}
	return fmt.Sprintf("      review:\n        share: %g\n        deadline: %s\n", c.ReviewShare, deadline)
}
