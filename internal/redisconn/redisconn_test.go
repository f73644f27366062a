package redisconn

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

// TestPingErrorKeepsLibraryTextWithShortPasswords: redaction replaced every
// substring equal to the password, so with password "x" Redis' "ERR DB index
// is out of range" read "ERR DB inde[redacted] is out of range", and a
// password that is a common word ("redis") blanked half the message. The
// error now holds nothing secret by construction and is printed as is.
func TestPingErrorKeepsLibraryTextWithShortPasswords(t *testing.T) {
	rs := redistest.Start(t)
	for _, pw := range []string{"x", "e", "redis"} {
		if err := rs.Client(t).ConfigSet(context.Background(), "requirepass", pw).Err(); err != nil {
			t.Fatal(err)
		}
		cfg := config.Defaults()
		cfg.Redis.URL = "redis://:" + pw + "@" + rs.Addr() + "/99" // 16 databases: out of range
		c, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Ping(context.Background(), time.Second)
		c.Close()
		want := "redis unavailable: redis://:xxxxx@" + rs.Addr() + "/99: ERR DB index is out of range"
		if err == nil || err.Error() != want {
			t.Errorf("password %q: ping error\n %v\nwant\n %s", pw, err, want)
		}
		// Back to no password for the next round's CONFIG SET.
		admin := redis.NewClient(&redis.Options{Addr: rs.Addr(), Password: pw})
		if err := admin.ConfigSet(context.Background(), "requirepass", "").Err(); err != nil {
			t.Fatal(err)
		}
		admin.Close()
	}
}
