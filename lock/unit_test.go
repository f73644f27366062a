package lock

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// Fast unit tests on miniredis: validation, options, key layout, metrics.
// Anything about concurrency or Redis failure is in redis_test.go against a
// real redis-server.

func newMini(t *testing.T, opts ...Option) (*Manager, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return NewManager(rdb, opts...), mr
}

func TestValidateIDs(t *testing.T) {
	long := strings.Repeat("x", MaxPostingIDLen)
	cases := []struct {
		mp, posting string
		ok          bool
	}{
		{"upwork", "job_123", true},
		{"a", "b", true},
		{"up-work_2", long, true},
		{"", "p", false},
		{strings.Repeat("a", MaxMarketplaceIDLen+1), "p", false},
		{"up:work", "x", false}, // colon would alias keys
		{"Upwork", "x", false},
		{"upwork", "", false},
		{"upwork", long + "y", false},
		{"upwork", "has space", false},
		{"upwork", "tab\tid", false},
		{"upwork", "nul\x00", false},
		{"upwork", "é", false},
		{"upwork", "a:b{c}", true}, // printable is fine: the marketplace part has no colon
	}
	for _, c := range cases {
		err := ValidateIDs(c.mp, c.posting)
		if (err == nil) != c.ok {
			t.Errorf("ValidateIDs(%q, %q) = %v, want ok=%v", c.mp, c.posting, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidID) {
			t.Errorf("ValidateIDs(%q, %q) error %v is not ErrInvalidID", c.mp, c.posting, err)
		}
	}
}

func TestInvalidIDNeverReachesRedis(t *testing.T) {
	m, mr := newMini(t)
	_, err := m.TryAcquire(context.Background(), "bad:mp", "p1")
	if !errors.Is(err, ErrInvalidID) || !strings.Contains(err.Error(), `"bad:mp"`) {
		t.Fatalf("err = %v, want ErrInvalidID quoting the value", err)
	}
	if n := len(mr.Keys()); n != 0 {
		t.Fatalf("redis has %d keys after an invalid acquire", n)
	}
	if got := m.Metrics().Attempts; got != 0 {
		t.Fatalf("invalid ids counted as %d attempts", got)
	}
}

func TestKeyLayout(t *testing.T) {
	k := Keys{Prefix: "bid_lock"}
	if got := k.Lock("upwork", "job_123"); got != "bid_lock:upwork:job_123" {
		t.Errorf("lock key %q is not the seed's layout", got)
	}
	if got := k.Fence("upwork", "job_123"); got != "bid_lock_fence" {
		t.Errorf("fence key %q: without hash tags one counter serves the node", got)
	}
	k.HashTags = true
	if got := k.Lock("upwork", "job_123"); got != "bid_lock:{upwork:job_123}" {
		t.Errorf("hash-tagged lock key %q", got)
	}
	// Every key of a posting must hash to one Cluster slot, even when the
	// posting ID carries braces of its own.
	for _, p := range []string{"job", "a}b", "{x}", "}{", "x{y}z"} {
		l, f := k.Lock("mp", p), k.Fence("mp", p)
		if KeySlot(l) != KeySlot(f) {
			t.Errorf("posting %q: lock %q (slot %d) and fence %q (slot %d) are in different slots", p, l, KeySlot(l), f, KeySlot(f))
		}
	}
}

// TestSlotTagsCoverEverySlot: each slot has a tag that lands in it.
func TestSlotTagsCoverEverySlot(t *testing.T) {
	for slot := 0; slot < ClusterSlots; slot++ {
		tag := SlotTag(slot)
		if got := KeySlot("k:" + tag); got != slot {
			t.Fatalf("SlotTag(%d) = %q lands in slot %d", slot, tag, got)
		}
	}
	// CRC-16/XMODEM check value, and slots Redis' own docs give.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16 check value %#x, want 0x31c3", got)
	}
	if got := KeySlot("foo"); got != 12182 {
		t.Fatalf("slot of foo %d, want 12182", got)
	}
	if got := KeySlot("{user1000}.following"); got != KeySlot("user1000") {
		t.Fatal("hash tag not honoured")
	}
	if got := KeySlot("foo{}{bar}"); got != KeySlot("foo{}{bar}") || got == KeySlot("bar") {
		t.Fatal("an empty first tag must hash the whole key")
	}
}

func TestOptionsClamped(t *testing.T) {
	cases := []struct {
		in, want time.Duration
	}{
		{0, DefaultTTL},
		{time.Millisecond, MinTTL},
		{MinTTL, MinTTL},
		{48 * time.Hour, MaxTTL},
		{5 * time.Second, 5 * time.Second},
	}
	for _, c := range cases {
		m, _ := newMini(t, WithTTL(c.in))
		if m.TTL() != c.want {
			t.Errorf("WithTTL(%s) -> %s, want %s", c.in, m.TTL(), c.want)
		}
	}
	m, _ := newMini(t, WithRetry(2*time.Second, time.Second))
	if m.opts.retryMax < m.opts.retryMin {
		t.Errorf("retry max %s below min %s", m.opts.retryMax, m.opts.retryMin)
	}
}

func TestAcquireReleaseOnMiniredis(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, mr := newMini(t, WithRegisterer(reg))
	ctx := context.Background()
	l, err := m.TryAcquire(ctx, "upwork", "job_1")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := mr.Get("bid_lock:upwork:job_1"); v != l.Holder() {
		t.Fatalf("stored holder %q, lock says %q", v, l.Holder())
	}
	if v, _ := mr.Get("bid_lock_fence"); v != strconv.FormatInt(l.Token(), 10) {
		t.Fatalf("fence counter %q, token %d", v, l.Token())
	}
	if _, err := m.TryAcquire(ctx, "upwork", "job_1"); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("second TryAcquire: %v, want ErrNotAcquired", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("second Release: %v, want no-op", err)
	}
	if mr.Exists("bid_lock:upwork:job_1") {
		t.Fatal("lock key left after Release")
	}
	if l.Context().Err() == nil {
		t.Fatal("Context not cancelled by Release")
	}
	got := m.Metrics()
	want := Metrics{Attempts: 2, Successes: 1, Conflicts: 1}
	if got != want {
		t.Fatalf("metrics %+v, want %+v", got, want)
	}
	if v := testutil.ToFloat64(m.prom.conflict); v != 1 {
		t.Fatalf("bidder_lock_acquire_total{result=conflict} = %v", v)
	}
	if n, err := testutil.GatherAndCount(reg, "bidder_lock_acquire_total", "bidder_lock_wait_seconds", "bidder_lock_held_seconds"); err != nil || n != 6 {
		t.Fatalf("gathered %d series (%v), want 6: four results, wait, held", n, err)
	}
}

func TestTwoManagersShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, mr := newMini(t, WithRegisterer(reg))
	b := NewManager(redis.NewClient(&redis.Options{Addr: mr.Addr()}), WithRegisterer(reg))
	ctx := context.Background()
	la, err := a.TryAcquire(ctx, "m", "1")
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release(ctx)
	if _, err := b.TryAcquire(ctx, "m", "1"); !errors.Is(err, ErrNotAcquired) {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(a.prom.acquire.WithLabelValues("acquired")) + testutil.ToFloat64(b.prom.acquire.WithLabelValues("conflict")); v != 2 {
		t.Fatalf("shared series sum %v, want 2 (second Manager must reuse the registered collector)", v)
	}
}

func TestWaitZeroIsOneTry(t *testing.T) {
	m, mr := newMini(t)
	ctx := context.Background()
	if err := mr.Set("bid_lock:m:p", "someone"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := m.Acquire(ctx, "m", "p", 0)
	if !errors.Is(err, ErrNotAcquired) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait 0: %v, want a plain conflict", err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Fatalf("wait 0 took %s", el)
	}
	if got := m.Metrics(); got.Conflicts != 1 || got.Timeouts != 0 {
		t.Fatalf("metrics %+v, want one conflict", got)
	}
}

func TestCheck(t *testing.T) {
	m, mr := newMini(t, WithTTL(time.Second))
	ctx := context.Background()
	l, err := m.TryAcquire(ctx, "m", "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(); err != nil {
		t.Fatalf("fresh lock: %v", err)
	}
	// A process that was stopped wakes with its lease in the past.
	l.mu.Lock()
	l.validUntil = time.Now().Add(-time.Millisecond)
	l.mu.Unlock()
	if err := l.Check(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("expired lease: %v, want ErrLockLost", err)
	}
	_ = mr
	l2, _ := m.TryAcquire(ctx, "m", "q")
	_ = l2.Release(ctx)
	if err := l2.Check(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("released lock: %v, want ErrLockLost", err)
	}
}
