package config

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// embeddedYAML is the config used when no file is found: in-process Redis
// and an in-process sandbox marketplace, so a fresh checkout runs as is.
// configs/embedded.yaml is a copy kept equal by a test.
//
//go:embed embedded.yaml
var embeddedYAML []byte

// EmbeddedYAML returns the built-in config document.
func EmbeddedYAML() []byte { return append([]byte(nil), embeddedYAML...) }

// DefaultSearchPaths are tried in order when no --config is given.
var DefaultSearchPaths = []string{"bidder.yaml", "configs/bidder.yaml"}

// Options says where Load looks and what overrides the file.
type Options struct {
	// Path is --config; when set, the file must exist.
	Path string
	// SearchPaths replaces DefaultSearchPaths (tests).
	SearchPaths []string
	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile reads config and token files; nil means os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// Adapters are the adapter names the binary knows; a marketplace naming
	// another is refused.
	Adapters []string
	// Flags override env and file: the highest precedence.
	Flags Flags
}

// Flags are the command-line overrides; empty means not given.
type Flags struct {
	HTTPAddr  string
	LogLevel  string
	LogFormat string
}

// Env variables read by Load.
const (
	EnvRedisURL          = "REDIS_URL"
	EnvRedisHost         = "REDIS_HOST"
	EnvRedisPort         = "REDIS_PORT"
	EnvRedisDB           = "REDIS_DB"
	EnvRedisPassword     = "REDIS_PASSWORD"
	EnvRedisUsername     = "REDIS_USERNAME"
	EnvRedisHashTags     = "BIDDER_REDIS_HASH_TAGS"
	EnvHTTPAddr          = "BIDDER_HTTP_ADDR"
	EnvLogLevel          = "BIDDER_LOG_LEVEL"
	EnvLogFormat         = "BIDDER_LOG_FORMAT"
	EnvWorkerConcurrency = "BIDDER_WORKER_CONCURRENCY"
)

// Load reads, overrides, validates and resolves the config. Every error is an
// *Error (errors.Is(err, ErrInvalid)).
func Load(o Options) (Config, error) {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	cfg := Defaults()
	doc, source, err := find(o)
	if err != nil {
		return Config{}, err
	}
	if source == EmbeddedSource && envNamesRedis(o.LookupEnv) {
		// The demo's in-process sandbox must never meet a real Redis.
		doc, source = nil, NoFileSource
	}
	cfg.Source = source
	if err := decode(doc, &cfg); err != nil {
		var ce *Error
		if errors.As(err, &ce) && source != EmbeddedSource && ce.Key == "" {
			ce.Problem = source + ": " + ce.Problem
		}
		return Config{}, err
	}
	if err := applyEnv(&cfg, o.LookupEnv); err != nil {
		return Config{}, err
	}
	applyFlags(&cfg, o.Flags)
	applyScanDefaults(&cfg)
	applyNotifyDefaults(&cfg)
	if err := validate(&cfg, o.Adapters); err != nil {
		return Config{}, err
	}
	if err := resolveSecrets(&cfg, o); err != nil {
		return Config{}, err
	}
	if err := expandAccounts(&cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func find(o Options) ([]byte, string, error) {
	if o.Path != "" {
		b, err := o.ReadFile(o.Path)
		if err != nil {
			return nil, "", &Error{Key: "--config", Problem: fmt.Sprintf("cannot read %q: %v", o.Path, unwrapPath(err)), Err: err}
		}
		return b, o.Path, nil
	}
	paths := o.SearchPaths
	if paths == nil {
		paths = DefaultSearchPaths
	}
	for _, p := range paths {
		b, err := o.ReadFile(p)
		if err == nil {
			return b, p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", &Error{Key: p, Problem: fmt.Sprintf("cannot read: %v", unwrapPath(err)), Err: err}
		}
	}
	return embeddedYAML, EmbeddedSource, nil
}

// unwrapPath drops the path from an *fs.PathError, which the message names already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// envValue is an environment variable's value, blank counting as unset.
func envValue(lookup func(string) (string, bool), k string) (string, bool) {
	v, ok := lookup(k)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// envNamesRedis reports whether the environment points at a Redis.
func envNamesRedis(lookup func(string) (string, bool)) bool {
	_, url := envValue(lookup, EnvRedisURL)
	_, host := envValue(lookup, EnvRedisHost)
	return url || host
}

func applyEnv(cfg *Config, lookup func(string) (string, bool)) error {
	get := func(k string) (string, bool) { return envValue(lookup, k) }
	_, url := get(EnvRedisURL)
	_, host := get(EnvRedisHost)
	if url && host {
		// Which one wins would be a guess; a stale export in a shell
		// profile would silently point the process elsewhere.
		return errorf(EnvRedisURL+", "+EnvRedisHost+" (env)", "both set; set one of them")
	}
	// An address from the environment replaces the file's standalone
	// address as a whole: mixing a file URL with an env host is never meant.
	if v, ok := get(EnvRedisURL); ok {
		cfg.Redis.URL, cfg.Redis.Host = v, ""
	}
	if v, ok := get(EnvRedisHost); ok {
		cfg.Redis.Host, cfg.Redis.URL = v, ""
	}
	if v, ok := get(EnvRedisPort); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errorf(EnvRedisPort+" (env)", "want a port number, got %q", v)
		}
		cfg.Redis.Port = n
	}
	if v, ok := get(EnvRedisDB); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errorf(EnvRedisDB+" (env)", "want a database number, got %q", v)
		}
		cfg.Redis.DB = n
	}
	if v, ok := get(EnvRedisHashTags); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errorf(EnvRedisHashTags+" (env)", "want true or false, got %q", v)
		}
		cfg.Redis.HashTags = b
	}
	if v, ok := get(EnvHTTPAddr); ok {
		cfg.HTTP.Addr = v
	}
	if v, ok := get(EnvLogLevel); ok {
		cfg.Log.Level = v
	}
	if v, ok := get(EnvLogFormat); ok {
		cfg.Log.Format = v
	}
	if v, ok := get(EnvWorkerConcurrency); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errorf(EnvWorkerConcurrency+" (env)", "want an integer, got %q", v)
		}
		cfg.Worker.Concurrency = n
	}
	return nil
}

func applyFlags(cfg *Config, f Flags) {
	if f.HTTPAddr != "" {
		cfg.HTTP.Addr = f.HTTPAddr
	}
	if f.LogLevel != "" {
		cfg.Log.Level = f.LogLevel
	}
	if f.LogFormat != "" {
		cfg.Log.Format = f.LogFormat
	}
}

func applyScanDefaults(cfg *Config) {
	for i := range cfg.Marketplaces {
		s := &cfg.Marketplaces[i].Scan
		if strings.TrimSpace(s.Schedule) == "" {
			s.Schedule = DefaultSchedule
		}
		if s.PageSize == 0 {
			s.PageSize = DefaultPageSize
		}
		if s.RequestsPerSecond == 0 {
			s.RequestsPerSecond = DefaultRequestsPerSecond
		}
	}
}

// resolveSecrets reads passwords and tokens from where the config says they
// are. Messages name the variable or file, never the value.
func resolveSecrets(cfg *Config, o Options) error {
	env := func(key, name string) (string, error) {
		v, ok := o.LookupEnv(name)
		if !ok || v == "" {
			return "", errorf(key, "environment variable %s is not set", name)
		}
		return v, nil
	}
	var err error
	r := &cfg.Redis
	if r.Mode() != ModeEmbedded {
		switch {
		case r.PasswordEnv != "":
			if r.Password, err = env("redis.password_env", r.PasswordEnv); err != nil {
				return err
			}
		case r.PasswordFile != "":
			if r.Password, err = secretFile(o, "redis.password_file", r.PasswordFile); err != nil {
				return err
			}
		default:
			if v, ok := o.LookupEnv(EnvRedisPassword); ok {
				r.Password = v
			}
		}
		switch {
		case r.UsernameEnv != "":
			if r.Username, err = env("redis.username_env", r.UsernameEnv); err != nil {
				return err
			}
		case r.Username == "":
			if v, ok := o.LookupEnv(EnvRedisUsername); ok {
				r.Username = strings.TrimSpace(v)
			}
		}
		switch {
		case r.Sentinel.PasswordEnv != "":
			if r.Sentinel.Password, err = env("redis.sentinel.password_env", r.Sentinel.PasswordEnv); err != nil {
				return err
			}
		case r.Sentinel.PasswordFile != "":
			if r.Sentinel.Password, err = secretFile(o, "redis.sentinel.password_file", r.Sentinel.PasswordFile); err != nil {
				return err
			}
		}
	}
	if ba := &cfg.HTTP.Monitoring.BasicAuth; ba.Enabled() {
		if ba.Password, err = env("http.monitoring.basic_auth.password_env", ba.PasswordEnv); err != nil {
			return err
		}
	}
	if err := resolveNotifySecrets(cfg, o, env); err != nil {
		return err
	}
	for i := range cfg.Marketplaces {
		m := &cfg.Marketplaces[i]
		key := fmt.Sprintf("marketplaces[%d]", i)
		switch {
		case m.TokenEnv != "":
			if m.Token, err = env(key+".token_env", m.TokenEnv); err != nil {
				return err
			}
		case m.TokenFile != "":
			b, rerr := o.ReadFile(m.TokenFile)
			if rerr != nil {
				return &Error{Key: key + ".token_file", Problem: fmt.Sprintf("cannot read %q: %v", m.TokenFile, unwrapPath(rerr)), Err: rerr}
			}
			m.Token = strings.TrimSpace(string(b))
			if m.Token == "" {
				return errorf(key+".token_file", "%q is empty", m.TokenFile)
			}
		}
		for j := range m.Accounts {
			a := &m.Accounts[j]
			akey := fmt.Sprintf("%s.accounts[%d]", key, j)
			if a.Token, err = tokenOf(o, env, akey, a.TokenEnv, a.TokenFile); err != nil {
				return err
			}
		}
		if err := m.Proposals.ResolveAPIKey(o.LookupEnv, o.ReadFile); err != nil {
			return rulesError(key, err)
		}
	}
	return nil
}

// tokenOf resolves an account's token from its variable or file.
func tokenOf(o Options, env func(key, name string) (string, error), key, tokenEnv, tokenFile string) (string, error) {
	if tokenEnv != "" {
		return env(key+".token_env", tokenEnv)
	}
	b, err := o.ReadFile(tokenFile)
	if err != nil {
		return "", &Error{Key: key + ".token_file", Problem: fmt.Sprintf("cannot read %q: %v", tokenFile, unwrapPath(err)), Err: err}
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", errorf(key+".token_file", "%q is empty", tokenFile)
	}
	return t, nil
}

// secretFile reads a one-line secret; the message names the file, never
// its content.
func secretFile(o Options, key, path string) (string, error) {
	b, err := o.ReadFile(path)
	if err != nil {
		return "", &Error{Key: key, Problem: fmt.Sprintf("cannot read %q: %v", path, unwrapPath(err)), Err: err}
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", errorf(key, "%q is empty", path)
	}
	return v, nil
}

func applyNotifyDefaults(cfg *Config) {
	for i := range cfg.Notify.Channels {
		c := &cfg.Notify.Channels[i]
		if c.RatePerSecond == 0 {
			c.RatePerSecond = DefaultNotifyRate
			if c.Type == ChannelWebhook {
				c.RatePerSecond = DefaultNotifyWebhookRate
			}
		}
	}
}

// resolveNotifySecrets reads each channel's credential, as marketplace
// tokens are read. Only when notifications are on: a disabled section may
// name variables this host does not set.
func resolveNotifySecrets(cfg *Config, o Options, env func(key, name string) (string, error)) error {
	if !cfg.Notify.Enabled {
		return nil
	}
	for i := range cfg.Notify.Channels {
		c := &cfg.Notify.Channels[i]
		key := fmt.Sprintf("notify.channels[%d]", i)
		name, envName, file := "secret", c.SecretEnv, c.SecretFile
		switch c.Type {
		case ChannelSlack:
			name, envName, file = "url", c.URLEnv, c.URLFile
		case ChannelTelegram:
			name, envName, file = "token", c.TokenEnv, c.TokenFile
		}
		var err error
		which := key + "." + name + "_env"
		switch {
		case envName != "":
			c.Secret, err = env(which, envName)
		case file != "":
			which = key + "." + name + "_file"
			c.Secret, err = secretFile(o, which, file)
		}
		if err != nil {
			return err
		}
		c.Secret = strings.TrimSpace(c.Secret)
		if c.Type == ChannelSlack {
			// The URL is the credential: checked, never quoted.
			if err := checkChannelURL(which, c.Secret, true); err != nil {
				return err
			}
		}
	}
	return nil
}
