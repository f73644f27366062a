// Package redisconn builds the one go-redis client a bidder process shares
// between the lock, the ledger, the budget, the scanner and asynq, from the
// config: standalone, Sentinel, Cluster, or an in-process miniredis when no
// Redis is configured (embedded mode).
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
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

	secrets []string
	mr      *miniredis.Miniredis
}

// Open builds the client. It does not contact Redis: a Redis that is down at
// start is reported by Ping and waited for by WaitReady, not a start-up
// failure.
func Open(cfg config.Config) (*Conn, error) {
	r := cfg.Redis
	c := &Conn{Mode: r.Mode(), secrets: cfg.Secrets()}
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
		opt, err := standaloneOptions(r)
		if err != nil {
			return nil, err
		}
		c.Client = redis.NewClient(opt)
		c.Where = describe(opt.TLSConfig != nil, opt.Username, opt.Password != "", opt.Addr, opt.DB)
	case config.ModeSentinel:
		c.Client = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       r.Sentinel.MasterName,
			SentinelAddrs:    r.Sentinel.Addrs,
			SentinelPassword: r.Sentinel.Password,
			Password:         r.Password,
			DB:               r.DB,
		})
		c.Where = fmt.Sprintf("sentinel master %q via %v, db %d", r.Sentinel.MasterName, r.Sentinel.Addrs, r.DB)
	case config.ModeCluster:
		c.Client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: r.Cluster.Addrs, Password: r.Password})
		c.Where = fmt.Sprintf("cluster %v", r.Cluster.Addrs)
	default:
		return nil, fmt.Errorf("redisconn: unknown mode %q", c.Mode)
	}
	return c, nil
}

func standaloneOptions(r config.Redis) (*redis.Options, error) {
	if r.URL != "" {
		opt, err := redis.ParseURL(r.URL)
		if err != nil {
			// go-redis may quote parts of the URL; say only which key is wrong.
			return nil, fmt.Errorf("redisconn: redis.url %s: cannot be parsed", config.RedactURL(r.URL))
		}
		if opt.Password == "" {
			opt.Password = r.Password
		}
		return opt, nil
	}
	return &redis.Options{
		Addr:     r.Host + ":" + strconv.Itoa(r.Port),
		DB:       r.DB,
		Password: r.Password,
	}, nil
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

// Ping checks Redis within timeout. Its error never holds a secret.
func (c *Conn) Ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrUnavailable, c.Where, c.Scrub(err.Error()))
	}
	return nil
}

// Scrub removes every configured secret from s (library error texts).
func (c *Conn) Scrub(s string) string { return config.Scrub(s, c.secrets) }

// WaitReady pings until Redis answers or ctx ends, backing off with jitter
// from 200ms to 10s and logging each failure. A Redis that is down at start
// is waited for, not a reason to exit: an orchestrator restarting bidder in
// a loop helps nobody.
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
