package lock_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/bidder/bidder/lock"
)

// The seed's test list (shared/seed/ISSUE_19_SOLUTION_SUMMARY.txt), each with
// an assertion that can fail. Where another test already covers an item it is
// named here instead of repeated:
//   acquire/release success, non-existent release   TestAcquireReleaseOnMiniredis
//   parameter validation                            TestValidateIDs, TestInvalidIDNeverReachesRedis
//   holder mismatch detection                       TestExpiredHolderCannotTouchNextHolder
//   lock conflicts, only one succeeds               TestHundredGoroutinesOneWinner
//   concurrent attempt handling                     TestWithLockMutualExclusion, TestTwoProcesses
//   context manager timeout                         TestAcquireHonoursDeadlineAndContext
//   metrics: conflicts, successes                   TestHundredGoroutinesOneWinner, TestWaitZeroIsOneTry
//   health check failure                            TestRedisKilledWhileHeldAndWhileWaiting

func TestSeedSequentialReacquisition(t *testing.T) {
	m, _, _ := setup(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		l, err := m.TryAcquire(ctx, "upwork", "job_123")
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("round %d release: %v", i, err)
		}
	}
}

func TestSeedMultipleIndependentLocks(t *testing.T) {
	m, _, _ := setup(t)
	ctx := context.Background()
	a, err := m.TryAcquire(ctx, "upwork", "job_1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.TryAcquire(ctx, "upwork", "job_2")
	if err != nil {
		t.Fatalf("a second posting is blocked by the first: %v", err)
	}
	c, err := m.TryAcquire(ctx, "fiverr", "job_1")
	if err != nil {
		t.Fatalf("same posting ID on another marketplace is blocked: %v", err)
	}
	if a.Key() == b.Key() || a.Key() == c.Key() {
		t.Fatal("distinct postings share a key")
	}
	if n, _ := m.ReleaseAll(ctx); n != 3 {
		t.Fatalf("released %d, want 3", n)
	}
}

func TestSeedWithLockReleasesOnErrorAndPanic(t *testing.T) {
	m, rdb, _ := setup(t)
	ctx := context.Background()
	boom := errors.New("boom")
	var key string
	err := m.WithLock(ctx, "m", "p", time.Second, func(ctx context.Context, l *lock.Lock) error {
		key = l.Key()
		if ctx.Err() != nil {
			t.Error("fn got a dead context")
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WithLock = %v, want fn's error", err)
	}
	if rdb.Exists(ctx, key).Val() != 0 {
		t.Fatal("lock left behind after fn failed")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		_ = m.WithLock(ctx, "m", "p", time.Second, func(ctx context.Context, l *lock.Lock) error { panic("in fn") })
	}()
	if rdb.Exists(ctx, key).Val() != 0 {
		t.Fatal("lock left behind after fn panicked")
	}
}

func TestSeedWithLockReportsLossDuringFn(t *testing.T) {
	m, rdb, _ := setup(t, lock.WithTTL(300*time.Millisecond))
	ctx := context.Background()
	err := m.WithLock(ctx, "m", "p", time.Second, func(ctx context.Context, l *lock.Lock) error {
		rdb.Del(ctx, l.Key())
		<-ctx.Done() // fn stops when told the lock is gone
		return nil
	})
	if !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("WithLock = %v, want ErrLockLost", err)
	}
}

func TestSeedHealthCheckSuccess(t *testing.T) {
	m, _, _ := setup(t)
	if err := m.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSeedCrashedHolderExpires: a process takes the lock and dies without
// releasing; the lock frees itself after the TTL and no sooner.
func TestSeedCrashedHolderExpires(t *testing.T) {
	if addr := os.Getenv("BIDDER_LOCK_CRASH_ADDR"); addr != "" {
		crashChild(addr)
		return
	}
	ttl := 500 * time.Millisecond
	m, _, s := setup(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSeedCrashedHolderExpires$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BIDDER_LOCK_CRASH_ADDR="+s.Addr())
	if out, err := cmd.CombinedOutput(); err == nil || cmd.ProcessState.ExitCode() != 7 {
		t.Fatalf("child did not crash holding the lock: %v\n%s", err, out)
	}
	crashed := time.Now()
	ctx := context.Background()
	if _, err := m.TryAcquire(ctx, "m", "crash"); !errors.Is(err, lock.ErrNotAcquired) {
		t.Fatalf("lock of a just-crashed holder: %v, want still held", err)
	}
	l, err := m.Acquire(ctx, "m", "crash", 5*time.Second)
	if err != nil {
		t.Fatalf("lock never freed after the holder crashed: %v", err)
	}
	defer l.Release(ctx)
	if el := time.Since(crashed); el > ttl+time.Second {
		t.Fatalf("freed %s after the crash, TTL is %s", el, ttl)
	}
}

func crashChild(addr string) {
	m, _ := newClientManager(addr, lock.WithTTL(500*time.Millisecond))
	if _, err := m.TryAcquire(context.Background(), "m", "crash"); err != nil {
		os.Exit(1)
	}
	os.Exit(7) // no Release, no cleanup: the watchdog dies with us
}
