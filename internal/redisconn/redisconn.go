// Package redisconn builds the one go-redis client a bidder process shares
// between the lock, the ledger, the budget, the scanner and asynq, from the
// config: standalone, Sentinel, Cluster, or an in-process miniredis when no
// Redis is configured (embedded mode).
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/config"
)

// ErrUnavailable wraps every "Redis did not answer" error from this package.
var ErrUnavailable = errors.New("redis unavailable")

// Conn is the shared client and what it points at.
type Conn struct {
	Client redis.UniversalClient
	Mode   string // config.Mode*
	// Where says where Redis is, password redacted: safe to log.
	Where string

	mr *miniredis.Miniredis
}

// Open builds the client. It does not contact Redis: a Redis that is down at
// start is reported by Ping and waited for by WaitReady, not a start-up
// failure. Unreadable TLS files are config errors (*config.Error).
func Open(cfg config.Config) (*Conn, error) {
	r := cfg.Redis
	c := &Conn{Mode: r.Mode()}
	var tlsCfg *tls.Config
	if r.TLSOn() && c.Mode != config.ModeEmbedded {
		var err error
		if tlsCfg, err = TLSConfig(r.TLS, os.ReadFile); err != nil {
			return nil, err
		}
	}
	switch c.Mode {
	case config.ModeEmbedded:
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return nil, fmt.Errorf("redisconn: start in-process redis: %w", err)
		}
		// Without a running clock miniredis never expires keys, and asynq's
		// leases, locks and task retention depend on TTLs running down.
		mr.ClockTTL(true)
		c.mr = mr
		c.Client = redis.NewClient(&redis.Options{Addr: mr.Addr()})
		c.Where = "in-process (miniredis at " + mr.Addr() + ", data in memory only)"
	case config.ModeStandalone:
		opt, err := standaloneOptions(r, tlsCfg)
		if err != nil {
			return nil, err
		}
		c.Client = redis.NewClient(opt)
		c.Where = describe(opt.TLSConfig != nil, opt.Username, opt.Password != "", opt.Addr, opt.DB)
	case config.ModeSentinel:
		c.Client = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       r.Sentinel.MasterName,
			SentinelAddrs:    r.Sentinel.Addrs,
			SentinelUsername: r.Sentinel.Username,
			SentinelPassword: r.Sentinel.Password,
			Username:         r.Username,
			Password:         r.Password,
			DB:               r.DB,
			TLSConfig:        tlsCfg,
			PoolSize:         r.PoolSize,
			DialTimeout:      time.Duration(r.DialTimeout),
			ReadTimeout:      time.Duration(r.ReadTimeout),
			WriteTimeout:     time.Duration(r.WriteTimeout),
		})
		c.Where = fmt.Sprintf("sentinel master %q via %v, db %d%s", r.Sentinel.MasterName, r.Sentinel.Addrs, r.DB, authNote(tlsCfg != nil, r.Username))
	case config.ModeCluster:
		c.Client = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:        r.Cluster.Addrs,
			Username:     r.Username,
			Password:     r.Password,
			TLSConfig:    tlsCfg,
			PoolSize:     r.PoolSize,
			DialTimeout:  time.Duration(r.DialTimeout),
			ReadTimeout:  time.Duration(r.ReadTimeout),
			WriteTimeout: time.Duration(r.WriteTimeout),
		})
		c.Where = fmt.Sprintf("cluster %v%s", r.Cluster.Addrs, authNote(tlsCfg != nil, r.Username))
	default:
		return nil, fmt.Errorf("redisconn: unknown mode %q", c.Mode)
	}
	return c, nil
}

func authNote(tlsOn bool, user string) string {
	s := ""
	if tlsOn {
		s += ", tls"
	}
	if user != "" {
		s += ", user " + user
	}
	return s
}

// TLSConfig builds the client TLS config from the redis.tls block. read
// reads the PEM files (os.ReadFile). Errors are *config.Error naming the key.
func TLSConfig(t config.TLS, read func(string) ([]byte, error)) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if t.CAFile != "" {
		pem, err := read(t.CAFile)
		if err != nil {
			return nil, &config.Error{Key: "redis.tls.ca_file", Problem: fmt.Sprintf("cannot read %q: %v", t.CAFile, unwrapPath(err)), Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &config.Error{Key: "redis.tls.ca_file", Problem: fmt.Sprintf("%q holds no PEM certificate", t.CAFile)}
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		certPEM, err := read(t.CertFile)
		if err != nil {
			return nil, &config.Error{Key: "redis.tls.cert_file", Problem: fmt.Sprintf("cannot read %q: %v", t.CertFile, unwrapPath(err)), Err: err}
		}
		keyPEM, err := read(t.KeyFile)
		if err != nil {
			return nil, &config.Error{Key: "redis.tls.key_file", Problem: fmt.Sprintf("cannot read %q: %v", t.KeyFile, unwrapPath(err)), Err: err}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// X509KeyPair's messages describe the PEM blocks, never their content.
			return nil, &config.Error{Key: "redis.tls", Problem: fmt.Sprintf("cert_file %q and key_file %q: %v", t.CertFile, t.KeyFile, err), Err: err}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func standaloneOptions(r config.Redis, tlsCfg *tls.Config) (*redis.Options, error) {
	var opt *redis.Options
	if r.URL != "" {
		var err error
		opt, err = redis.ParseURL(r.URL)
		if err != nil {
			// A *url.Error quotes the whole URL, password included: then
			// say only that it does not parse. go-redis' own messages
			// (database number, port, options) quote the path or the
			// query, never the userinfo: they say why.
			why := "cannot be parsed"
			var ue *url.Error
			if !errors.As(err, &ue) {
				why = strings.TrimPrefix(err.Error(), "redis: ")
			}
			return nil, &config.Error{Key: "redis.url", Problem: config.RedactURL(r.URL) + ": " + why}
		}
		if opt.Password == "" {
			opt.Password = r.Password
		}
		if opt.Username == "" {
			opt.Username = r.Username
		}
		if tlsCfg != nil {
			// ParseURL's own TLS config only names the host; keep that name
			// unless server_name says otherwise.
			if tlsCfg.ServerName == "" && opt.TLSConfig != nil {
				tlsCfg.ServerName = opt.TLSConfig.ServerName
			}
			opt.TLSConfig = tlsCfg
		}
	} else {
		opt = &redis.Options{
			Addr:      r.Host + ":" + strconv.Itoa(r.Port),
			DB:        r.DB,
			Username:  r.Username,
			Password:  r.Password,
			TLSConfig: tlsCfg,
		}
	}
	if r.PoolSize > 0 {
		opt.PoolSize = r.PoolSize
	}
	if r.DialTimeout > 0 {
		opt.DialTimeout = time.Duration(r.DialTimeout)
	}
	if r.ReadTimeout > 0 {
		opt.ReadTimeout = time.Duration(r.ReadTimeout)
	}
	if r.WriteTimeout > 0 {
		opt.WriteTimeout = time.Duration(r.WriteTimeout)
	}
	return opt, nil
}

func describe(tlsOn bool, user string, hasPassword bool, addr string, db int) string {
	u := url.URL{Scheme: "redis", Host: addr, Path: "/" + strconv.Itoa(db)}
	if tlsOn {
		u.Scheme = "rediss"
	}
	switch {
	case hasPassword:
		u.User = url.UserPassword(user, config.RedactedPassword)
	case user != "":
		u.User = url.User(user)
	}
	return config.RedactURL(u.String())
}

// Embedded reports whether Redis is in-process.
func (c *Conn) Embedded() bool { return c.mr != nil }

// ErrMisconfigured matches a Ping error that retrying cannot fix by
// itself: Redis refused the credentials (WRONGPASS, NOAUTH), the ACL user
// lacks a permission (NOPERM), or TLS failed (untrusted or misnamed server
// certificate, client certificate refused, TLS spoken to a plain port).
// Such errors also match ErrUnavailable.
var ErrMisconfigured = errors.New("redis configuration error")

// PingError is what Ping returns: one line naming Redis (password
// redacted) and the cause, never a secret.
type PingError struct {
	Where  string
	Cause  string // the library's text: addresses and Redis replies, never credentials
	Reason string // for configuration errors: what is wrong, in words
	Hint   string // for configuration errors: which key to check
	Err    error
}

func (e *PingError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%s: %s: %s", ErrUnavailable, e.Where, e.Cause)
	}
	return fmt.Sprintf("%s: %s: %s (%s); %s", ErrMisconfigured, e.Where, e.Reason, e.Cause, e.Hint)
}

// Is matches ErrUnavailable always, ErrMisconfigured for configuration errors.
func (e *PingError) Is(target error) bool {
	return target == ErrUnavailable || (target == ErrMisconfigured && e.Reason != "")
}

// Unwrap returns nil: callers match ErrUnavailable and ErrMisconfigured
// (Is), not the types of whichever library error came first.
func (e *PingError) Unwrap() error { return nil }

// Classify says whether err (from go-redis) is a configuration error, and
// if so what is wrong and which key to check.
func Classify(err error) (reason, hint string, ok bool) {
	if err == nil {
		return "", "", false
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		return "TLS: the server certificate is signed by an unknown authority", "check redis.tls.ca_file", true
	case errors.As(err, &hostname):
		return "TLS: the server certificate is not valid for the host dialled", "check redis.tls.server_name", true
	case errors.As(err, &invalid):
		return "TLS: the server certificate is invalid", "check the server certificate and redis.tls.ca_file", true
	case errors.As(err, &record):
		return "TLS: the server does not speak TLS on this port", "use redis:// or the server's tls-port", true
	case strings.Contains(msg, "remote error: tls:"):
		return "TLS: the server refused the handshake", "check redis.tls.cert_file and key_file (client certificate)", true
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"),
		strings.Contains(msg, "invalid username-password"):
		return "authentication failed: wrong username or password", "check redis.username and redis.password_env / password_file (REDIS_PASSWORD)", true
	case strings.Contains(msg, "NOAUTH"):
		return "authentication required: no password configured", "set redis.password_env or password_file (REDIS_PASSWORD)", true
	case strings.Contains(msg, "without any password configured"):
		return "a password was given but the server has none", "remove the password, or set one on the server", true
	case strings.Contains(msg, "NOPERM"):
		return "the ACL user lacks a permission", "grant what docs/redis.md lists for bidder's user", true
	}
	return "", "", false
}

// Ping checks Redis within timeout. Its error is a *PingError and never
// holds a secret.
func (c *Conn) Ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := c.Client.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	pe := &PingError{Where: c.Where, Cause: err.Error()}
	if reason, hint, ok := Classify(err); ok {
		pe.Reason, pe.Hint = reason, hint
	}
	return pe
}

// WaitReady pings until Redis answers or ctx ends, backing off with jitter
// from 200ms to 10s and logging each failure. A Redis that is down at start
// is waited for, not a reason to exit: an orchestrator restarting bidder in
// a loop helps nobody.
//
// A configuration error (ErrMisconfigured: wrong password, NOPERM,
// untrusted certificate) is returned at once: retrying cannot fix it, and
// the operator gets one clear start-up error (the daemon exits 2). Once
// running, the same error only makes /readyz report not ready, so a server
// side rotation does not stop a fleet. See docs/redis.md ("Start-up errors").
func (c *Conn) WaitReady(ctx context.Context, log *zap.Logger) error {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.Ping(ctx, 2*time.Second)
		if err == nil {
			if attempt > 1 {
				log.Info("redis reachable", zap.String("redis", c.Where), zap.Int("attempts", attempt))
			}
			return nil
		}
		if errors.Is(err, ErrMisconfigured) {
			// Wrong credentials or an untrusted certificate at start: a bad
			// config, which retrying cannot fix. (Once running, the pings of
			// /readyz report it instead, and the process keeps going, so a
			// rotation on the server side does not kill the fleet.)
			return err
		}
		log.Warn("redis unreachable, retrying", zap.String("error", err.Error()), zap.Duration("retry_in", backoff))
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// ConnOpt hands the shared client to code that wants an asynq.RedisConnOpt
// (asynqmon). Whoever uses it must not close the client it gets.
func (c *Conn) ConnOpt() asynq.RedisConnOpt { return sharedOpt{c.Client} }

type sharedOpt struct{ c redis.UniversalClient }

func (s sharedOpt) MakeRedisClient() any { return s.c }

// Close closes the client and stops an in-process Redis.
func (c *Conn) Close() error {
	err := c.Client.Close()
	if c.mr != nil {
		c.mr.Close()
	}
	return err
}

// RouteLogs sends go-redis' own log lines (dial failures, pool notices) to
// log at debug. Without it they go to stderr unstructured, ahead of the one
// line a command prints about the same failure. (They name addresses and
// master names, never credentials.) go-redis has one logger per process:
// the last call wins.
func RouteLogs(log *zap.Logger) {
	redis.SetLogger(zapLogger{log.Named("redis")})
}

type zapLogger struct{ log *zap.Logger }

func (l zapLogger) Printf(_ context.Context, format string, v ...any) {
	if l.log.Core().Enabled(zap.DebugLevel) {
		l.log.Debug(fmt.Sprintf(format, v...))
	}
}
