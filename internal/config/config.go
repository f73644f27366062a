// Package config loads bidder's configuration: a YAML file decoded strictly,
// then environment variables, then command-line flags (flag > env > file >
// default). Every problem is reported as one *Error naming the key path, so a
// bad config stops start-up with a message the operator can act on.
//
// Secrets never live in the file itself: the file names the environment
// variable (password_env, token_env) or file (token_file) that holds them, and
// the resolved values sit in fields YAML never prints. Redacted returns a copy
// that is safe to print or log.
package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bidder/bidder/worker/proposal"
	"github.com/bidder/bidder/worker/rules"
)

// ErrInvalid is what every config problem matches with errors.Is.
var ErrInvalid = errors.New("invalid config")

// Error is one config problem: the key path (or environment variable, or
// flag) and what is wrong with it.
type Error struct {
	Key     string // e.g. "marketplaces[0].scan.schedule", "REDIS_PORT (env)"
	Problem string
	Err     error // underlying cause, if any; its text is already in Problem
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "config: " + e.Problem
	}
	return "config: " + e.Key + ": " + e.Problem
}

// Is makes every Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

func errorf(key, format string, args ...any) *Error {
	return &Error{Key: key, Problem: fmt.Sprintf(format, args...)}
}

// Duration is a Go duration string in YAML ("30s", "168h").
type Duration = rules.Duration

// Config is the whole configuration of one bidder process.
type Config struct {
	Redis        Redis         `yaml:"redis"`
	Lock         Lock          `yaml:"lock"`
	Ledger       Ledger        `yaml:"ledger"`
	Worker       Worker        `yaml:"worker"`
	Recovery     Recovery      `yaml:"recovery"`
	Tracker      Tracker       `yaml:"tracker"`
	HTTP         HTTP          `yaml:"http"`
	Log          Log           `yaml:"log"`
	Notify       Notify        `yaml:"notify"`
	Marketplaces []Marketplace `yaml:"marketplaces"`

	// Source says where the config came from: a file path, or EmbeddedSource.
	Source string `yaml:"-"`
}

// EmbeddedSource is Config.Source when no config file was found and no
// Redis is configured: the built-in demo config.
const EmbeddedSource = "embedded defaults"

// NoFileSource is Config.Source when no config file was found but the
// environment names a real Redis (REDIS_URL, REDIS_HOST): the built-in
// defaults without the demo's marketplace, whose in-process sandbox must
// never meet a real Redis. Enough for operator commands; the daemons
// refuse it and say what to pass.
const NoFileSource = "no config file (built-in defaults, Redis from the environment)"

// Redis says how to reach Redis. With none of url, host, sentinel and
// cluster set, bidder runs an in-process Redis (embedded mode, data in memory).
type Redis struct {
	URL  string `yaml:"url"` // redis:// or rediss://; may hold a password
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	DB   int    `yaml:"db"`
	// Username is the ACL user (Redis 6+); "" = the default user. Not a
	// secret, but it can come from the environment: username_env, or
	// REDIS_USERNAME when neither is set.
	Username    string `yaml:"username"`
	UsernameEnv string `yaml:"username_env"`
	// The password: from the env var password_env, or from password_file
	// (trailing newline trimmed); with neither, from REDIS_PASSWORD if set.
	PasswordEnv  string   `yaml:"password_env"`
	PasswordFile string   `yaml:"password_file"`
	TLS          TLS      `yaml:"tls"`
	Sentinel     Sentinel `yaml:"sentinel"`
	Cluster      Cluster  `yaml:"cluster"`
	// HashTags puts every key of one posting in one Cluster slot. Required
	// with cluster; every instance sharing a Redis must agree on it.
	HashTags bool `yaml:"hash_tags"`

	// Pool and timeouts of the one shared client (0 = go-redis' default:
	// pool 10 per GOMAXPROCS, dial 5s, read 3s, write = read).
	PoolSize     int      `yaml:"pool_size"`
	DialTimeout  Duration `yaml:"dial_timeout"`
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`

	// Password is the resolved Redis password (never printed).
	Password string `yaml:"-"`
}

// TLS configures TLS to Redis (and to the sentinels, which go-redis dials
// with the same settings). It is on with a rediss:// url or enabled: true.
type TLS struct {
	Enabled  bool   `yaml:"enabled"`
	CAFile   string `yaml:"ca_file"`   // PEM CA bundle; "" = the system roots
	CertFile string `yaml:"cert_file"` // client certificate (tls-auth-clients), with key_file
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server certificate must carry; "" = the
	// host dialled.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate. Tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// TLSOn reports whether TLS is used: a rediss:// url or tls.enabled.
func (r Redis) TLSOn() bool {
	return r.TLS.Enabled || strings.HasPrefix(strings.ToLower(r.URL), "rediss://")
}

// Sentinel is Redis Sentinel addressing (go-redis failover client). The
// master's own username/password are redis.username and redis.password_*.
type Sentinel struct {
	MasterName   string   `yaml:"master_name"`
	Addrs        []string `yaml:"addrs"`
	Username     string   `yaml:"username"`      // the sentinels' ACL user, if any
	PasswordEnv  string   `yaml:"password_env"`  // the sentinels' own password, if any
	PasswordFile string   `yaml:"password_file"` // or from a file

	Password string `yaml:"-"`
}

// Cluster is Redis Cluster addressing.
type Cluster struct {
	Addrs []string `yaml:"addrs"`
}

// Redis modes, as reported by Redis.Mode.
const (
	ModeEmbedded   = "embedded"
	ModeStandalone = "standalone"
	ModeSentinel   = "sentinel"
	ModeCluster    = "cluster"
)

// Mode says which kind of Redis the config points at.
func (r Redis) Mode() string {
	switch {
	case r.Sentinel.MasterName != "" || len(r.Sentinel.Addrs) > 0:
		return ModeSentinel
	case len(r.Cluster.Addrs) > 0:
		return ModeCluster
	case r.URL != "" || r.Host != "":
		return ModeStandalone
	}
	return ModeEmbedded
}

// Lock configures the per-posting lock.
type Lock struct {
	TTL Duration `yaml:"ttl"`
}

// Ledger configures the decision record.
type Ledger struct {
	Retention Duration `yaml:"retention"`
	// WaitReplicas > 0 sends WAIT wait_replicas wait_timeout after every
	// ledger write, in the same round trip: an intent that fewer replicas
	// acknowledged is an error (no bid). See docs/redis.md.
	WaitReplicas int      `yaml:"wait_replicas"`
	WaitTimeout  Duration `yaml:"wait_timeout"`
}

// Worker configures the asynq server that runs scans and bids.
type Worker struct {
	Concurrency     int            `yaml:"concurrency"`
	Queues          map[string]int `yaml:"queues"`
	ShutdownTimeout Duration       `yaml:"shutdown_timeout"`
	SettleDelay     Duration       `yaml:"settle_delay"`
	PollInterval    Duration       `yaml:"poll_interval"`
	// QueuePerMarketplace (the default) puts each marketplace's bid tasks on
	// its own queue ("bids:<id>", weighted like "bids"): a worker then only
	// takes tasks of marketplaces it is configured for, and on Redis Cluster
	// the queues spread over nodes. Workers serve "bids" as well, for tasks
	// enqueued with it off.
	QueuePerMarketplace bool `yaml:"queue_per_marketplace"`
	// MaxRetry is how many counted failures a posting survives before it is
	// parked (waiting for a busy lock, a rate limit, the budget, replicas or
	// a marketplace outage never counts).
	MaxRetry int `yaml:"max_retry"`
}

// Recovery configures the pass that enqueues again a discovered, undecided
// posting whose bid task was lost (a failover, an eviction, a deletion).
type Recovery struct {
	// Every is how often, across all instances, a marketplace's pass runs
	// (after one of its scans); 0 turns the pass off.
	Every Duration `yaml:"every"`
	// After is how long a posting may stay undecided before the pass checks
	// that its task exists, and between checks. Tasks that wait (a budget
	// window, a marketplace outage) are fine: they exist.
	After Duration `yaml:"after"`
}

// Tracker configures the task that asks marketplaces what became of placed
// bids (for adapters that can read bid statuses) and records it in the
// ledger.
type Tracker struct {
	// Every is each marketplace's tracker slot, fleet-wide (one run per
	// slot); 0 turns tracking off.
	Every Duration `yaml:"every"`
	// FirstAfter is how long after a bid its first status poll is due.
	FirstAfter Duration `yaml:"first_after"`
	// Repoll is how long a still-pending bid waits between polls.
	Repoll Duration `yaml:"repoll"`
	// Horizon: a bid still pending this long after it was placed is
	// recorded as no_answer and no longer polled.
	Horizon Duration `yaml:"horizon"`
	// MaxBids bounds one run; the rest is due next slot.
	MaxBids int `yaml:"max_bids"`
}

// HTTP configures the one listener: /metrics, /healthz, /readyz, /monitoring/, /.
type HTTP struct {
	Addr string `yaml:"addr"`
	// AllowedHosts are Host header names the listener answers besides the
	// ones its address allows (DNS rebinding guard): on a loopback address
	// only localhost and loopback IPs, elsewhere any Host while this is
	// empty, else IP literals and these names. For a reverse proxy or a
	// Prometheus that reaches bidder by name.
	AllowedHosts []string   `yaml:"allowed_hosts"`
	Monitoring   Monitoring `yaml:"monitoring"`
	Actions      Actions    `yaml:"actions"`
}

// Actions configures the status page's state-changing buttons (resume
// parked postings). Off by default: the page is read-only. On, every
// request to them needs http.monitoring.basic_auth's credentials.
type Actions struct {
	Enabled bool `yaml:"enabled"`
}

// Monitoring configures the asynqmon UI under /monitoring/.
type Monitoring struct {
	Enabled   bool      `yaml:"enabled"`
	ReadOnly  bool      `yaml:"read_only"`
	BasicAuth BasicAuth `yaml:"basic_auth"`
	// AllowUnauthenticatedRemote lets the UI run without basic_auth on a
	// non-loopback address. asynqmon has no authentication of its own.
	AllowUnauthenticatedRemote bool `yaml:"allow_unauthenticated_remote"`
}

// BasicAuth protects the monitoring UI.
type BasicAuth struct {
	Username    string `yaml:"username"`
	PasswordEnv string `yaml:"password_env"`

	Password string `yaml:"-"`
}

// Enabled reports whether basic auth is configured.
func (b BasicAuth) Enabled() bool { return b.Username != "" }

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // LogFormatAuto, json, console
	// SummaryInterval: a worker logs one line per marketplace this often
	// (decisions in the interval, bid budget left); 0 = never.
	SummaryInterval Duration `yaml:"summary_interval"`
}

// LogFormatAuto logs for people on a terminal (console) and for machines
// elsewhere (JSON): the format follows where stderr goes.
const LogFormatAuto = "auto"

// Notify configures notifications: the ledger's outbox delivered to
// webhooks, Slack and Telegram (see docs/notifications.md).
type Notify struct {
	Enabled    bool     `yaml:"enabled"`
	SweepEvery Duration `yaml:"sweep_every"`
	// MaxRetry is how many counted failures a send survives before asynq
	// archives it (rate limits do not count).
	MaxRetry int `yaml:"max_retry"`
	// Events filters what any channel receives; empty: all.
	Events   []string        `yaml:"events"`
	Channels []NotifyChannel `yaml:"channels"`
	// RedisDownAfter: how long Redis may stay unreachable before each
	// worker says so to the channels, from memory (0: never).
	RedisDownAfter Duration `yaml:"redis_down_after"`
}

// Notification channel types.
const (
	ChannelWebhook  = "webhook"
	ChannelSlack    = "slack"
	ChannelTelegram = "telegram"
)

// NotifyChannel is one place notifications go. Credentials never live in
// the file: the webhook's signing secret, Slack's webhook URL (the URL is
// the credential) and Telegram's bot token come from an environment
// variable (*_env) or a file (*_file).
type NotifyChannel struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// URL: the webhook's endpoint; for telegram the Bot API's base URL
	// (default https://api.telegram.org). Not used for slack.
	URL        string `yaml:"url"`
	URLEnv     string `yaml:"url_env"` // slack
	URLFile    string `yaml:"url_file"`
	SecretEnv  string `yaml:"secret_env"` // webhook
	SecretFile string `yaml:"secret_file"`
	TokenEnv   string `yaml:"token_env"` // telegram
	TokenFile  string `yaml:"token_file"`
	ChatID     string `yaml:"chat_id"` // telegram
	// Events filters what this channel receives (within notify.events);
	// empty: all.
	Events []string `yaml:"events"`
	// RatePerSecond is the channel's send rate across all instances;
	// unset: 1 for slack and telegram, 10 for webhook.
	RatePerSecond float64 `yaml:"rate_per_second"`

	// Secret is the resolved credential: the webhook's secret, Slack's
	// URL, Telegram's token (never printed).
	Secret string `yaml:"-"`
}

// Notify defaults.
const (
	DefaultNotifyRate        = 1  // slack, telegram: what their APIs allow per webhook or chat
	DefaultNotifyWebhookRate = 10 // a receiver of ours
)

// Marketplace is one marketplace bidder scans and bids on.
type Marketplace struct {
	ID             string   `yaml:"id"`
	Adapter        string   `yaml:"adapter"`
	BaseURL        string   `yaml:"base_url"`
	TokenEnv       string   `yaml:"token_env"`
	TokenFile      string   `yaml:"token_file"`
	RequestTimeout Duration `yaml:"request_timeout"` // default DefaultRequestTimeout
	// Account names the account in idempotency keys; adapters derive one
	// from the token when empty (then rotating the token changes it).
	Account string `yaml:"account"`
	// Options are adapter-specific settings (see the adapter's docs).
	Options map[string]string `yaml:"options"`
	// Embedded (adapter sandbox only) starts an in-process sandbox marketplace
	// publishing generated postings, instead of calling base_url.
	Embedded bool         `yaml:"embedded"`
	Scan     Scan         `yaml:"scan"`
	Rules    rules.Config `yaml:"rules"`
	// Proposals says who writes the proposal text: the rules' template
	// (default) or a language model (see docs/proposals.md).
	Proposals proposal.Config `yaml:"proposals,omitempty"`
	// Accounts are several accounts on this marketplace, each with its own
	// token and rule overrides; AccountPolicy says whether one bid per
	// posting is across all of them (per_posting, the default: agency
	// mode) or per account (per_account). See docs/outcomes.md.
	AccountPolicy string    `yaml:"account_policy"`
	Accounts      []Account `yaml:"accounts"`

	// Token is the resolved API token (never printed).
	Token string `yaml:"-"`
}

// Scan configures how a marketplace is scanned.
type Scan struct {
	Schedule          string  `yaml:"schedule"` // cron, @hourly, or "@every 10s"
	PageSize          int     `yaml:"page_size"`
	RequestsPerSecond float64 `yaml:"requests_per_second"`
}

// DefaultRequestTimeout is the marketplace request timeout when
// request_timeout is unset; the adapters use the same.
const DefaultRequestTimeout = 10 * time.Second

// Defaults returns the built-in values a config file is decoded onto.
func Defaults() Config {
	return Config{
		Redis:  Redis{Port: 6379},
		Lock:   Lock{TTL: Duration(30 * time.Second)},
		Ledger: Ledger{Retention: Duration(720 * time.Hour), WaitTimeout: Duration(100 * time.Millisecond)},
		Worker: Worker{
			Concurrency:         20,
			Queues:              map[string]int{"bids": 6, "scans": 3},
			ShutdownTimeout:     Duration(30 * time.Second),
			SettleDelay:         Duration(15 * time.Second),
			PollInterval:        Duration(time.Second),
			QueuePerMarketplace: true,
			MaxRetry:            10,
		},
		Recovery: Recovery{Every: Duration(time.Minute), After: Duration(10 * time.Minute)},
		Tracker: Tracker{Every: Duration(15 * time.Minute), FirstAfter: Duration(10 * time.Minute), Repoll: Duration(time.Hour),
			Horizon: Duration(14 * 24 * time.Hour), MaxBids: 1000},
		HTTP: HTTP{
			Addr:       "127.0.0.1:8080",
			Monitoring: Monitoring{Enabled: true, ReadOnly: true},
		},
		Log:    Log{Level: "info", Format: LogFormatAuto, SummaryInterval: Duration(30 * time.Second)},
		Notify: Notify{SweepEvery: Duration(2 * time.Second), MaxRetry: 20, RedisDownAfter: Duration(2 * time.Minute)},
	}
}

// Scan defaults, applied per marketplace when a key is left out.
const (
	DefaultSchedule          = "@every 10s"
	DefaultPageSize          = 100
	DefaultRequestsPerSecond = 5
)
