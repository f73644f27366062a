package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"

	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/worker/rules"
)

func validate(cfg *Config, adapters []string) error {
	for _, check := range []func(*Config) error{
		validateRedis, validateLock, validateWorker, validateHTTP, validateLog, validateNotify,
	} {
		if err := check(cfg); err != nil {
			return err
		}
	}
	return validateMarketplaces(cfg, adapters)
}

func validateRedis(cfg *Config) error {
	r := cfg.Redis
	sentinel := r.Sentinel.MasterName != "" || len(r.Sentinel.Addrs) > 0
	cluster := len(r.Cluster.Addrs) > 0
	standalone := r.URL != "" || r.Host != ""
	n := 0
	for _, b := range []bool{sentinel, cluster, standalone} {
		if b {
			n++
		}
	}
	if n > 1 {
		return errorf("redis", "set only one of url/host, sentinel and cluster")
	}
	if r.URL != "" && r.Host != "" {
		return errorf("redis", "set url or host, not both")
	}
	if r.URL != "" {
		if err := checkRedisURL(r.URL); err != nil {
			return err
		}
	}
	if r.Port < 1 || r.Port > 65535 {
		return errorf("redis.port", "want 1-65535, got %d", r.Port)
	}
	if r.DB < 0 {
		return errorf("redis.db", "want >= 0, got %d", r.DB)
	}
	if sentinel {
		if r.Sentinel.MasterName == "" {
			return errorf("redis.sentinel.master_name", "required with sentinel.addrs")
		}
		if len(r.Sentinel.Addrs) == 0 {
			return errorf("redis.sentinel.addrs", "required with sentinel.master_name")
		}
		for i, a := range r.Sentinel.Addrs {
			if err := checkHostPort(a); err != nil {
				return errorf(fmt.Sprintf("redis.sentinel.addrs[%d]", i), "%v", err)
			}
		}
	}
	if err := validateRedisAuth(r); err != nil {
		return err
	}
	if err := validateRedisTLS(r); err != nil {
		return err
	}
	if err := validateRedisPool(cfg); err != nil {
		return err
	}
	if cluster {
		for i, a := range r.Cluster.Addrs {
			if err := checkHostPort(a); err != nil {
				return errorf(fmt.Sprintf("redis.cluster.addrs[%d]", i), "%v", err)
			}
		}
		if r.DB != 0 {
			return errorf("redis.db", "Redis Cluster has only database 0")
		}
		if !r.HashTags {
			// Without them a posting's lock, fence and ledger keys land in
			// different slots and the fenced Lua scripts fail with CROSSSLOT.
			return errorf("redis.hash_tags", "must be true with cluster")
		}
	}
	return nil
}

func validateRedisAuth(r Redis) error {
	if r.Username != "" && r.UsernameEnv != "" {
		return errorf("redis.username_env", "set username or username_env, not both")
	}
	if r.PasswordEnv != "" && r.PasswordFile != "" {
		return errorf("redis.password_file", "set password_env or password_file, not both")
	}
	if r.Sentinel.PasswordEnv != "" && r.Sentinel.PasswordFile != "" {
		return errorf("redis.sentinel.password_file", "set password_env or password_file, not both")
	}
	if r.Mode() == ModeEmbedded && (r.Username != "" || r.UsernameEnv != "" || r.PasswordEnv != "" || r.PasswordFile != "") {
		return errorf("redis", "username/password set but no Redis address (url, host, sentinel or cluster)")
	}
	return nil
}

func validateRedisTLS(r Redis) error {
	t := r.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errorf("redis.tls", "set cert_file and key_file together")
	}
	if t.Enabled && strings.HasPrefix(strings.ToLower(r.URL), "redis://") {
		return errorf("redis.tls.enabled", "contradicts a redis:// url; use rediss:// for TLS")
	}
	if !r.TLSOn() && (t.CAFile != "" || t.CertFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		return errorf("redis.tls", "settings given but TLS is off: set tls.enabled: true or use a rediss:// url")
	}
	if r.TLSOn() && r.Mode() == ModeEmbedded {
		return errorf("redis.tls", "TLS needs a Redis address (url, host, sentinel or cluster)")
	}
	return nil
}

// DefaultReadTimeout is go-redis' read timeout when redis.read_timeout is 0.
const DefaultReadTimeout = 3 * time.Second

func validateRedisPool(cfg *Config) error {
	r := cfg.Redis
	if r.PoolSize < 0 {
		return errorf("redis.pool_size", "want >= 0 (0 = go-redis default), got %d", r.PoolSize)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"redis.dial_timeout", r.DialTimeout}, {"redis.read_timeout", r.ReadTimeout}, {"redis.write_timeout", r.WriteTimeout}} {
		if d.v < 0 {
			return errorf(d.key, "must not be negative (0 = go-redis default)")
		}
	}
	l := cfg.Ledger
	if l.WaitReplicas < 0 {
		return errorf("ledger.wait_replicas", "want >= 0, got %d", l.WaitReplicas)
	}
	if l.WaitReplicas > 0 {
		if r.Mode() == ModeEmbedded {
			return errorf("ledger.wait_replicas", "needs a Redis with replicas; the in-process Redis has none")
		}
		if l.WaitTimeout <= 0 {
			// WAIT n 0 blocks until n replicas answer: a worker stuck forever.
			return errorf("ledger.wait_timeout", "must be positive with wait_replicas")
		}
		rt := time.Duration(r.ReadTimeout)
		if rt == 0 {
			rt = DefaultReadTimeout
		}
		if time.Duration(l.WaitTimeout) >= rt {
			return errorf("ledger.wait_timeout", "must be shorter than redis.read_timeout (%s), or the client gives up before WAIT answers", rt)
		}
	}
	return nil
}

// checkRedisURL validates the URL with go-redis' own parser, the one that
// will read it. The password never reaches an error text: an unencoded '/',
// '?' or '#' in the userinfo (where a parser ends the host, and takes the
// rest of the password for host, path or query) is refused first, so the
// redacted copy has the real one's structure, and messages come from
// parsing that copy.
func checkRedisURL(raw string) error {
	red := RedactURL(raw)
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return errorf("redis.url", "%s: want redis://[user:password@]host:port/db", red)
	}
	if s := strings.ToLower(scheme); s != "redis" && s != "rediss" {
		return errorf("redis.url", "want a redis:// or rediss:// URL, got scheme %q", scheme)
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 && strings.ContainsAny(rest[:at], "/?#") {
		return errorf("redis.url", "%s: the username or password holds an unencoded '/', '?' or '#'; percent-encode them (%%2F, %%3F, %%23)", red)
	}
	if _, err := redis.ParseURL(red); err != nil {
		return errorf("redis.url", "%s: %s", red, strings.TrimPrefix(err.Error(), "redis: "))
	}
	if u, err := url.Parse(red); err != nil || u.Host == "" {
		return errorf("redis.url", "%s: no host", red)
	}
	if _, err := redis.ParseURL(raw); err != nil {
		// The copy parsed, so the difference is in the userinfo: its text
		// is not shown.
		return errorf("redis.url", "%s: the username or password is not valid in a URL; percent-encode special characters", red)
	}
	return nil
}

func checkHostPort(a string) error {
	h, p, err := net.SplitHostPort(a)
	if err != nil || h == "" || p == "" {
		return fmt.Errorf("want host:port, got %q", a)
	}
	return nil
}

func validateLock(cfg *Config) error {
	l := cfg.Lock
	if d := time.Duration(l.TTL); d < lock.MinTTL || d > lock.MaxTTL {
		return errorf("lock.ttl", "want %s-%s, got %s", lock.MinTTL, lock.MaxTTL, d)
	}
	if cfg.Ledger.Retention <= 0 {
		return errorf("ledger.retention", "must be positive")
	}
	return nil
}

func validateWorker(cfg *Config) error {
	w := cfg.Worker
	if w.Concurrency < 1 {
		return errorf("worker.concurrency", "want >= 1, got %d", w.Concurrency)
	}
	for name, weight := range w.Queues {
		if name != "bids" && name != "scans" {
			return errorf("worker.queues."+name, "unknown queue (bids, scans)")
		}
		if weight < 1 {
			return errorf("worker.queues."+name, "want a weight >= 1, got %d", weight)
		}
	}
	if w.ShutdownTimeout <= 0 {
		return errorf("worker.shutdown_timeout", "must be positive")
	}
	if w.SettleDelay <= 0 {
		return errorf("worker.settle_delay", "must be positive")
	}
	if w.PollInterval <= 0 {
		return errorf("worker.poll_interval", "must be positive")
	}
	if w.MaxRetry < 1 {
		return errorf("worker.max_retry", "want >= 1, got %d", w.MaxRetry)
	}
	if r := cfg.Recovery; r.Every < 0 {
		return errorf("recovery.every", "must not be negative (0 turns the pass off)")
	} else if r.After < Duration(time.Minute) {
		return errorf("recovery.after", "want >= 1m (a posting's task must have had time to exist), got %s", time.Duration(r.After))
	}
	return validateTracker(cfg.Tracker)
}

func validateTracker(t Tracker) error {
	switch {
	case t.Every < 0:
		return errorf("tracker.every", "must not be negative (0 turns tracking off)")
	case t.Every > 0 && t.Every < Duration(time.Minute):
		return errorf("tracker.every", "want >= 1m or 0 (off), got %s", time.Duration(t.Every))
	case t.FirstAfter < 0:
		return errorf("tracker.first_after", "must not be negative")
	case t.Repoll < Duration(time.Minute):
		return errorf("tracker.repoll", "want >= 1m, got %s", time.Duration(t.Repoll))
	case t.Horizon < t.Repoll:
		return errorf("tracker.horizon", "want >= tracker.repoll (%s), got %s", time.Duration(t.Repoll), time.Duration(t.Horizon))
	case t.MaxBids < 1:
		return errorf("tracker.max_bids", "want >= 1, got %d", t.MaxBids)
	}
	return nil
}

func validateHTTP(cfg *Config) error {
	h := cfg.HTTP
	host, _, err := net.SplitHostPort(h.Addr)
	if err != nil {
		return errorf("http.addr", "want host:port, got %q", h.Addr)
	}
	for i, name := range h.AllowedHosts {
		if err := checkAllowedHost(name); err != nil {
			return errorf(fmt.Sprintf("http.allowed_hosts[%d]", i), "%v", err)
		}
	}
	m := h.Monitoring
	ba := m.BasicAuth
	if ba.Username != "" && ba.PasswordEnv == "" {
		return errorf("http.monitoring.basic_auth.password_env", "required with basic_auth.username")
	}
	if ba.Username == "" && ba.PasswordEnv != "" {
		return errorf("http.monitoring.basic_auth.username", "required with basic_auth.password_env")
	}
	if h.Actions.Enabled && !ba.Enabled() {
		return errorf("http.actions.enabled", "needs http.monitoring.basic_auth (its credentials guard the status page's resume buttons)")
	}
	if m.Enabled && !ba.Enabled() && !m.AllowUnauthenticatedRemote && !IsLoopback(host) {
		return errorf("http.monitoring", "refusing to serve the monitoring UI without basic_auth on non-loopback address %q "+
			"(set http.monitoring.basic_auth, or allow_unauthenticated_remote: true)", h.Addr)
	}
	return nil
}

// checkAllowedHost accepts a host name or IP literal as a Host header
// carries it, without port or scheme: the guard compares names only.
func checkAllowedHost(name string) error {
	if ip := net.ParseIP(strings.Trim(name, "[]")); ip != nil {
		return nil
	}
	if name == "" || len(name) > 253 {
		return fmt.Errorf("want a host name, got %q", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("want a host name without scheme, port or wildcard, got %q", name)
		}
	}
	return nil
}

// IsLoopback reports whether a listen host only accepts local connections.
// An empty host listens on every interface.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validateLog(cfg *Config) error {
	switch cfg.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return errorf("log.level", "want debug, info, warn or error, got %q", cfg.Log.Level)
	}
	switch cfg.Log.Format {
	case LogFormatAuto, "json", "console":
	default:
		return errorf("log.format", "want auto, json or console, got %q", cfg.Log.Format)
	}
	if cfg.Log.SummaryInterval < 0 {
		return errorf("log.summary_interval", "must not be negative (0 = no summary lines)")
	}
	return nil
}

func validateMarketplaces(cfg *Config, adapters []string) error {
	seen := map[string]int{}
	for i, m := range cfg.Marketplaces {
		key := fmt.Sprintf("marketplaces[%d]", i)
		if err := lock.ValidateMarketplaceID(m.ID); err != nil {
			return &Error{Key: key + ".id", Problem: strings.TrimPrefix(err.Error(), "lock: "), Err: err}
		}
		if j, dup := seen[m.ID]; dup {
			return errorf(key+".id", "%q already used by marketplaces[%d]", m.ID, j)
		}
		seen[m.ID] = i
		if m.Adapter == "" {
			return errorf(key+".adapter", "required (one of %s)", strings.Join(adapters, ", "))
		}
		if !slices.Contains(adapters, m.Adapter) {
			return errorf(key+".adapter", "unknown adapter %q (known: %s)", m.Adapter, strings.Join(adapters, ", "))
		}
		if m.Embedded {
			if m.Adapter != "sandbox" {
				return errorf(key+".embedded", "only the sandbox adapter can run embedded")
			}
			if cfg.Redis.Mode() != ModeEmbedded {
				// Its generated postings carry IDs a real marketplace uses
				// too (p-000001...): in a shared Redis they would be
				// recorded, and skipped for good, under those IDs.
				return errorf(key+".embedded", "an in-process sandbox runs only with the in-process Redis, not with a %s one (remove redis.* / unset REDIS_URL and REDIS_HOST, or give the marketplace a base_url)", cfg.Redis.Mode())
			}
			if m.BaseURL != "" || m.TokenEnv != "" || m.TokenFile != "" {
				return errorf(key+".embedded", "an embedded sandbox takes no base_url, token_env or token_file")
			}
		} else {
			u, err := url.Parse(m.BaseURL)
			if m.BaseURL == "" {
				return errorf(key+".base_url", "required (or embedded: true for the sandbox adapter)")
			}
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errorf(key+".base_url", "want an http:// or https:// URL")
			}
			if u.User != nil {
				return errorf(key+".base_url", "must not hold credentials; use token_env or token_file")
			}
			if (m.TokenEnv == "") == (m.TokenFile == "") && len(m.Accounts) == 0 {
				return errorf(key, "set exactly one of token_env and token_file")
			}
		}
		if m.RequestTimeout < 0 {
			return errorf(key+".request_timeout", "must not be negative")
		}
		// Reconciliation trusts "no bid found" only once an earlier attempt's
		// request can no longer be in flight.
		timeout := time.Duration(m.RequestTimeout)
		if timeout == 0 {
			timeout = DefaultRequestTimeout
		}
		if settle := time.Duration(cfg.Worker.SettleDelay); settle <= timeout {
			return errorf(key+".request_timeout", "%s (the default when unset is %s) must be shorter than worker.settle_delay (%s), or reconciliation could miss a bid still in flight", timeout, DefaultRequestTimeout, settle)
		}
		if err := checkSchedule(m.Scan.Schedule); err != nil {
			return &Error{Key: key + ".scan.schedule", Problem: err.Error(), Err: err}
		}
		if m.Scan.PageSize < 1 || m.Scan.PageSize > 1000 {
			return errorf(key+".scan.page_size", "want 1-1000, got %d", m.Scan.PageSize)
		}
		if m.Scan.RequestsPerSecond < 0 {
			return errorf(key+".scan.requests_per_second", "must not be negative")
		}
		if err := m.Rules.Validate(); err != nil {
			return rulesError(key, err)
		}
		if err := m.Proposals.Validate(); err != nil {
			return rulesError(key, err) // the same *rules.FieldError, keys from "proposals."
		}
		if err := validateAccounts(&cfg.Marketplaces[i], key); err != nil {
			return err
		}
	}
	return nil
}

// rulesError reports the first rules problem under the marketplace's key.
func rulesError(key string, err error) error {
	var fe *rules.FieldError
	if errors.As(err, &fe) {
		n := countJoined(err)
		p := fe.Problem
		if n > 1 {
			p += fmt.Sprintf(" (and %d more problem(s))", n-1)
		}
		return &Error{Key: key + "." + fe.Key, Problem: p, Err: err}
	}
	return &Error{Key: key + ".rules", Problem: err.Error(), Err: err}
}

func countJoined(err error) int {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return len(j.Unwrap())
	}
	return 1
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// checkSchedule accepts what the scanner accepts: "@every <whole seconds>",
// a descriptor, or a 5-field cron spec (CRON_TZ= allowed) that fires.
func checkSchedule(spec string) error {
	s := strings.TrimSpace(spec)
	if rest, ok := strings.CutPrefix(s, "@every"); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return fmt.Errorf("bad @every duration %q: %w", spec, err)
		}
		if d < time.Second || d%time.Second != 0 {
			return fmt.Errorf("@every needs a whole number of seconds >= 1s, got %q", spec)
		}
		return nil
	}
	c, err := cronParser.Parse(s)
	if err != nil {
		return fmt.Errorf("bad cron spec %q: %w", spec, err)
	}
	if _, relative := c.(cron.ConstantDelaySchedule); relative {
		return fmt.Errorf("bad cron spec %q: write @every without a time zone", spec)
	}
	if c.Next(time.Now()).IsZero() {
		return fmt.Errorf("bad cron spec %q: never fires", spec)
	}
	return nil
}

// notifyEvents are the event kinds the ledger writes to the outbox.
var notifyEvents = []string{"bid_placed", "review_needed", "posting_parked", "budget_spent", "marketplace_unauthorized", "redis_unreachable"}

func validateNotify(cfg *Config) error {
	n := cfg.Notify
	if n.SweepEvery < Duration(100*time.Millisecond) {
		return errorf("notify.sweep_every", "want >= 100ms, got %s", time.Duration(n.SweepEvery))
	}
	if n.MaxRetry < 1 {
		return errorf("notify.max_retry", "want >= 1, got %d", n.MaxRetry)
	}
	if d := time.Duration(n.RedisDownAfter); d != 0 && d < time.Second {
		return errorf("notify.redis_down_after", "want 0 (never) or >= 1s, got %s", d)
	}
	if err := checkEvents("notify.events", n.Events); err != nil {
		return err
	}
	if n.Enabled && len(n.Channels) == 0 {
		return errorf("notify.channels", "required with notify.enabled (at least one channel)")
	}
	seen := map[string]int{}
	for i, c := range n.Channels {
		key := fmt.Sprintf("notify.channels[%d]", i)
		if !channelName(c.Name) {
			return errorf(key+".name", "want 1-64 of a-z, 0-9, '-' and '_' (it names tasks, keys and metrics), got %q", c.Name)
		}
		if j, dup := seen[c.Name]; dup {
			return errorf(key+".name", "%q already used by notify.channels[%d]", c.Name, j)
		}
		seen[c.Name] = i
		if err := checkEvents(key+".events", c.Events); err != nil {
			return err
		}
		if c.RatePerSecond < 0 {
			return errorf(key+".rate_per_second", "must not be negative")
		}
		// What a type does not use is refused: a secret_env on a slack
		// channel is a mistake about where its credential goes.
		unused := func(keys map[string]string) error {
			for _, k := range []string{"url", "url_env", "url_file", "secret_env", "secret_file", "token_env", "token_file", "chat_id"} {
				if v, ok := keys[k]; ok && v != "" {
					return errorf(key+"."+k, "not used by a %s channel", c.Type)
				}
			}
			return nil
		}
		one := func(a, b, va, vb string) error {
			if (va == "") == (vb == "") {
				return errorf(key, "set exactly one of %s and %s", a, b)
			}
			return nil
		}
		switch c.Type {
		case ChannelWebhook:
			if c.URL == "" {
				return errorf(key+".url", "required for a webhook channel")
			}
			if err := checkChannelURL(key+".url", c.URL, false); err != nil {
				return err
			}
			if err := one("secret_env", "secret_file", c.SecretEnv, c.SecretFile); err != nil {
				return err
			}
			if err := unused(map[string]string{"url_env": c.URLEnv, "url_file": c.URLFile, "token_env": c.TokenEnv, "token_file": c.TokenFile, "chat_id": c.ChatID}); err != nil {
				return err
			}
		case ChannelSlack:
			if c.URL != "" {
				return errorf(key+".url", "a Slack webhook URL is a credential: put it in an environment variable (url_env) or a file (url_file)")
			}
			if err := one("url_env", "url_file", c.URLEnv, c.URLFile); err != nil {
				return err
			}
			if err := unused(map[string]string{"secret_env": c.SecretEnv, "secret_file": c.SecretFile, "token_env": c.TokenEnv, "token_file": c.TokenFile, "chat_id": c.ChatID}); err != nil {
				return err
			}
		case ChannelTelegram:
			if c.URL != "" {
				if err := checkChannelURL(key+".url", c.URL, false); err != nil {
					return err
				}
			}
			if err := one("token_env", "token_file", c.TokenEnv, c.TokenFile); err != nil {
				return err
			}
			if strings.TrimSpace(c.ChatID) == "" {
				return errorf(key+".chat_id", "required for a telegram channel")
			}
			if err := unused(map[string]string{"url_env": c.URLEnv, "url_file": c.URLFile, "secret_env": c.SecretEnv, "secret_file": c.SecretFile}); err != nil {
				return err
			}
		default:
			return errorf(key+".type", "want webhook, slack or telegram, got %q", c.Type)
		}
	}
	return nil
}

func checkEvents(key string, events []string) error {
	for i, e := range events {
		if !slices.Contains(notifyEvents, e) {
			return errorf(fmt.Sprintf("%s[%d]", key, i), "unknown event %q (known: %s)", e, strings.Join(notifyEvents, ", "))
		}
	}
	return nil
}

func channelName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkChannelURL accepts an https URL, or http to a loopback host (a
// receiver on the same machine, tests). secret: the URL is a credential,
// and the message never quotes it.
func checkChannelURL(key, raw string, secret bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		if secret {
			return errorf(key, "want an https URL")
		}
		return errorf(key, "want an https URL, got %q", RedactURL(raw))
	}
	if u.User != nil {
		return errorf(key, "must not hold credentials in the URL")
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		return errorf(key, "want an https URL (http only to a loopback address)")
	}
	return nil
}
