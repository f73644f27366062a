package redisconn

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/redistest"
)

func TestEmbeddedRunsTTLs(t *testing.T) {
	c, err := Open(config.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Embedded() || !strings.Contains(c.Where, "memory only") {
		t.Fatalf("mode %s where %q", c.Mode, c.Where)
	}
	ctx := context.Background()
	if err := c.Client.Set(ctx, "k", "v", 100*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	// asynq's leases and the lock's TTL rely on expiry actually happening.
	deadline := time.Now().Add(3 * time.Second)
	for c.Client.Exists(ctx, "k").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("key never expired: ClockTTL not on")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStandaloneWithPassword(t *testing.T) {
	const pw = "pw-0123456789"
	rs := redistest.Start(t)
	// Set after start: redistest's readiness check pings without a password.
	if err := rs.Client(t).ConfigSet(context.Background(), "requirepass", pw).Err(); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(rs.Addr())

	cfg := config.Defaults()
	cfg.Redis.URL = "redis://:" + pw + "@" + rs.Addr() + "/3"
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.Where, pw) || !strings.Contains(c.Where, "xxxxx") {
		t.Fatalf("where %q", c.Where)
	}

	cfg = config.Defaults()
	cfg.Redis.Host, cfg.Redis.Password = host, "wrong-"+pw
	_ = port
	cfg.Redis.Port = mustAtoi(t, port)
	c2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	err = c2.Ping(context.Background(), time.Second)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrMisconfigured) || strings.Contains(err.Error(), pw) ||
		!strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("ping with a wrong password: %v", err)
	}
	t.Logf("wrong password: %v", err)
}

func TestWaitReadyStopsWithContext(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := config.Defaults()
	cfg.Redis.URL = "redis://:secret-pw@" + addr + "/0"
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := c.WaitReady(ctx, zap.NewNop()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}
