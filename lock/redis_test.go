package lock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/lock"
)

// These tests run against a real redis-server started on a free port
// (internal/redistest); they skip without one unless BIDDER_REQUIRE_REDIS=1.

func setup(t *testing.T, opts ...lock.Option) (*lock.Manager, *redis.Client, *redistest.Server) {
	t.Helper()
	s := redistest.Start(t)
	rdb := s.Client(t)
	return lock.NewManager(rdb, opts...), rdb, s
}

// scriptCalls is how many scripts the server has run: proof that a waiter
// is really in its retry loop, without guessing at timing.
func scriptCalls(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return -1
	}
	total := 0
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		_, rest, _ := strings.Cut(line, "calls=")
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		total += n
	}
	return total
}

func TestHundredGoroutinesOneWinner(t *testing.T) {
	m, _, _ := setup(t)
	ctx := context.Background()
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			l, err := m.TryAcquire(ctx, "upwork", "job_123")
			switch {
			case err == nil:
				wins.Add(1)
				_ = l // held until the test ends
			case !errors.Is(err, lock.ErrNotAcquired):
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d goroutines won the lock, want exactly 1", got)
	}
	mt := m.Metrics()
	if mt.Attempts != 100 || mt.Successes != 1 || mt.Conflicts != 99 {
		t.Fatalf("metrics %+v, want 100 attempts, 1 success, 99 conflicts", mt)
	}
	if n, err := m.ReleaseAll(ctx); n != 1 || err != nil {
		t.Fatalf("ReleaseAll = %d, %v; want 1, nil", n, err)
	}
}

func TestWithLockMutualExclusion(t *testing.T) {
	m, _, _ := setup(t, lock.WithRetry(time.Millisecond, 20*time.Millisecond))
	ctx := context.Background()
	const goroutines, sections = 32, 50
	var inside, maxInside, ran atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < sections; i++ {
				err := m.WithLock(ctx, "m", "shared", time.Minute, func(ctx context.Context, l *lock.Lock) error {
					n := inside.Add(1)
					for {
						cur := maxInside.Load()
						if n <= cur || maxInside.CompareAndSwap(cur, n) {
							break
						}
					}
					runtime.Gosched()
					ran.Add(1)
					inside.Add(-1)
					return nil
				})
				if err != nil {
					t.Errorf("WithLock: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if maxInside.Load() != 1 {
		t.Fatalf("%d holders were inside at once", maxInside.Load())
	}
	if ran.Load() != goroutines*sections {
		t.Fatalf("%d sections ran, want %d", ran.Load(), goroutines*sections)
	}
}

// TestTwoProcesses re-executes the test binary: two OS processes contend
// for one lock and mark the critical section with an O_EXCL file, which
// fails if the other process is inside.
func TestTwoProcesses(t *testing.T) {
	if addr := os.Getenv("BIDDER_LOCK_CHILD_ADDR"); addr != "" {
		os.Exit(lockChild(addr, os.Getenv("BIDDER_LOCK_CHILD_DIR")))
	}
	_, rdb, s := setup(t)
	dir := t.TempDir()
	var cmds []*exec.Cmd
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestTwoProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), "BIDDER_LOCK_CHILD_ADDR="+s.Addr(), "BIDDER_LOCK_CHILD_DIR="+dir)
		out, err := os.Create(filepath.Join(dir, "child"+strconv.Itoa(i)+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "child"+strconv.Itoa(i)+".log"))
			t.Fatalf("child %d: %v\n%s", i, err, log)
		}
	}
	n, err := rdb.Get(context.Background(), "sections").Int()
	if err != nil || n != 2*childSections {
		t.Fatalf("sections run = %d (%v), want %d", n, err, 2*childSections)
	}
}

const childSections = 200

func lockChild(addr, dir string) int {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	m := lock.NewManager(rdb, lock.WithRetry(time.Millisecond, 10*time.Millisecond))
	ctx := context.Background()
	marker := filepath.Join(dir, "inside")
	for i := 0; i < childSections; i++ {
		err := m.WithLock(ctx, "m", "cross-process", time.Minute, func(ctx context.Context, l *lock.Lock) error {
			f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("both processes inside the critical section: %w", err)
			}
			f.Close()
			runtime.Gosched()
			if err := rdb.Incr(ctx, "sections").Err(); err != nil {
				return err
			}
			return os.Remove(marker)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 3
		}
	}
	return 0
}

func TestExpiredHolderCannotTouchNextHolder(t *testing.T) {
	m, rdb, _ := setup(t, lock.WithTTL(lock.MinTTL))
	ctx := context.Background()
	first, err := m.TryAcquire(ctx, "m", "p")
	if err != nil {
		t.Fatal(err)
	}
	// Simulate the lease running out under a stalled holder: the key goes.
	if err := rdb.Del(ctx, first.Key()).Err(); err != nil {
		t.Fatal(err)
	}
	second, err := m.TryAcquire(ctx, "m", "p")
	if err != nil {
		t.Fatalf("second holder: %v", err)
	}
	defer second.Release(ctx)
	if err := first.Refresh(ctx); !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("stale Refresh: %v, want ErrLockLost", err)
	}
	if err := first.Release(ctx); !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("stale Release: %v, want ErrLockLost", err)
	}
	if v, _ := rdb.Get(ctx, second.Key()).Result(); v != second.Holder() {
		t.Fatalf("second holder's key now %q, want %q: the stale holder touched it", v, second.Holder())
	}
	if first.Context().Err() == nil {
		t.Fatal("stale holder's Context still live")
	}
	if second.Token() <= first.Token() {
		t.Fatalf("tokens %d then %d: not increasing", first.Token(), second.Token())
	}
}

func TestTokensIncreaseAcrossExpiryAndManagers(t *testing.T) {
	s := redistest.Start(t)
	a := lock.NewManager(s.Client(t), lock.WithTTL(lock.MinTTL))
	b := lock.NewManager(s.Client(t), lock.WithTTL(lock.MinTTL))
	ctx := context.Background()
	var last int64
	for i := 0; i < 20; i++ {
		m := a
		if i%2 == 1 {
			m = b
		}
		l, err := m.Acquire(ctx, "m", "p", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if l.Token() <= last {
			t.Fatalf("acquisition %d: token %d after %d", i, l.Token(), last)
		}
		last = l.Token()
		if i%3 == 0 {
			// Let it expire instead of releasing: stop renewals by deleting
			// nothing, just abandon it to its TTL after a release-less wait.
			if err := s.Client(t).PExpire(ctx, l.Key(), time.Millisecond).Err(); err != nil {
				t.Fatal(err)
			}
			wait.Until(t, 5*time.Second, "abandoned lock noticed as lost", func() bool { return l.Context().Err() != nil })
			continue
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatchdogKeepsLockThroughLongWork(t *testing.T) {
	m, rdb, _ := setup(t, lock.WithTTL(time.Second))
	ctx := context.Background()
	l, err := m.TryAcquire(ctx, "m", "long")
	if err != nil {
		t.Fatal(err)
	}
	// 3 s of work = 3 TTLs: without renewal the key would be gone.
	workDone := time.After(3 * time.Second)
	for done := false; !done; {
		select {
		case <-workDone:
			done = true
		case <-l.Context().Done():
			t.Fatalf("lock lost during work: %v", context.Cause(l.Context()))
		case <-time.After(100 * time.Millisecond):
			if v, _ := rdb.Get(ctx, l.Key()).Result(); v != l.Holder() {
				t.Fatalf("key holds %q mid-work, want ours", v)
			}
		}
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("release after long work: %v", err)
	}
}

func TestKeyDeletedFromOutsideCancelsContext(t *testing.T) {
	ttl := time.Second
	m, rdb, _ := setup(t, lock.WithTTL(ttl))
	ctx := context.Background()
	l, err := m.TryAcquire(ctx, "m", "p")
	if err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if err := rdb.Del(ctx, l.Key()).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Context().Done():
	case <-time.After(ttl/3 + 300*time.Millisecond):
		t.Fatalf("Context not cancelled within TTL/3 + margin of the key's deletion")
	}
	if !errors.Is(context.Cause(l.Context()), lock.ErrLockLost) || l.Lost() == nil {
		t.Fatalf("cause %v, want ErrLockLost", context.Cause(l.Context()))
	}
	t.Logf("loss noticed after %s", time.Since(deleted))
	if got := m.Metrics().Lost; got != 1 {
		t.Fatalf("Lost = %d, want 1", got)
	}
	if err := l.Release(ctx); !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("Release of a lost lock: %v, want ErrLockLost", err)
	}
}

func TestRedisKilledWhileHeldAndWhileWaiting(t *testing.T) {
	ttl := time.Second
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: 100 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, MaxRetries: 1})
	defer rdb.Close()
	base := runtime.NumGoroutine()
	m := lock.NewManager(rdb, lock.WithTTL(ttl))
	ctx := context.Background()

	held, err := m.TryAcquire(ctx, "m", "held")
	if err != nil {
		t.Fatal(err)
	}
	other := lock.NewManager(s.Client(t))
	if _, err := other.TryAcquire(ctx, "m", "contended"); err != nil {
		t.Fatal(err)
	}

	calls := scriptCalls(t, rdb)
	waitErr := make(chan error, 1)
	acquireWait := 2 * time.Second
	started := time.Now()
	go func() {
		_, err := m.Acquire(ctx, "m", "contended", acquireWait)
		waitErr <- err
	}()
	// Make sure the waiter is really waiting before Redis goes.
	wait.Until(t, 2*time.Second, "waiter made its first attempts", func() bool { return scriptCalls(t, rdb) >= calls+2 })
	s.Kill()

	select {
	case err := <-waitErr:
		if err == nil {
			t.Fatal("Acquire succeeded with Redis down")
		}
		if el := time.Since(started); el > acquireWait+time.Second {
			t.Fatalf("Acquire returned after %s, wait was %s", el, acquireWait)
		}
	case <-time.After(acquireWait + 2*time.Second):
		t.Fatal("Acquire did not return with Redis down")
	}
	select {
	case <-held.Context().Done():
	case <-time.After(ttl + time.Second):
		t.Fatal("held lock not reported lost although Redis was gone past its TTL")
	}
	if !errors.Is(held.Lost(), lock.ErrLockLost) {
		t.Fatalf("held.Lost() = %v", held.Lost())
	}
	if err := m.Health(ctx); err == nil {
		t.Fatal("Health passed with Redis down")
	}
	if _, err := m.TryAcquire(ctx, "m", "new"); err == nil || errors.Is(err, lock.ErrNotAcquired) {
		t.Fatalf("TryAcquire with Redis down: %v, want a Redis error", err)
	}
	if m.Metrics().RedisErrors == 0 {
		t.Fatal("Redis errors not counted")
	}
	if err := held.Release(ctx); err == nil {
		t.Fatal("Release with Redis down reported success")
	}

	s.Restart()
	if err := m.Health(ctx); err != nil {
		t.Fatalf("Health after restart: %v", err)
	}
	l, err := m.TryAcquire(ctx, "m", "after-restart")
	if err != nil {
		t.Fatalf("TryAcquire after restart: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Every watchdog and orphan-release goroutine has finished.
	wait.Until(t, 5*time.Second, "goroutines back to baseline", func() bool {
		return runtime.NumGoroutine() <= base+1
	})

}

func TestAcquireHonoursDeadlineAndContext(t *testing.T) {
	m, rdb, _ := setup(t)
	ctx := context.Background()
	holder, err := m.TryAcquire(ctx, "m", "busy")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release(ctx)

	for _, wait := range []time.Duration{100 * time.Millisecond, 700 * time.Millisecond} {
		start := time.Now()
		_, err := m.Acquire(ctx, "m", "busy", wait)
		el := time.Since(start)
		if !errors.Is(err, lock.ErrNotAcquired) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("wait %s: %v, want ErrNotAcquired wrapping DeadlineExceeded", wait, err)
		}
		if el < wait || el > wait+50*time.Millisecond {
			t.Errorf("wait %s returned after %s: want within 50ms past the deadline", wait, el)
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	calls := scriptCalls(t, rdb)
	go func() {
		// Cancel once the waiter is in its backoff loop.
		for scriptCalls(t, rdb) < calls+2 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err = m.Acquire(cctx, "m", "busy", time.Minute)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, lock.ErrNotAcquired) {
		t.Fatalf("cancelled mid-wait: %v, want ErrNotAcquired and context.Canceled", err)
	}
	if got := m.Metrics().Timeouts; got != 3 {
		t.Fatalf("Timeouts = %d, want 3", got)
	}
}

// TestTenThousandPostingsLeaveOneKey: fence counters are shared, so locking
// 10,000 postings leaves no key per posting at all, only the node's one
// counter, which never expires (a posting's tokens must keep increasing for
// as long as anything records one).
func TestTenThousandPostingsLeaveOneKey(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 postings")
	}
	m, rdb, _ := setup(t)
	ctx := context.Background()
	const n = 10000
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				l, err := m.TryAcquire(ctx, "m", "p"+strconv.Itoa(i))
				if err != nil {
					t.Error(err)
					continue
				}
				if err := l.Release(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "bid_lock_fence" {
		t.Fatalf("keys left: %d (%.5q), want only bid_lock_fence", len(keys), keys)
	}
	if v, _ := rdb.Get(ctx, "bid_lock_fence").Int(); v != n {
		t.Fatalf("counter %d after %d acquisitions", v, n)
	}
}

func TestReleaseAllTouchesOnlyOwnLocks(t *testing.T) {
	s := redistest.Start(t)
	mine := lock.NewManager(s.Client(t))
	theirs := lock.NewManager(s.Client(t))
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := mine.TryAcquire(ctx, "m", "mine"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	their, err := theirs.TryAcquire(ctx, "m", "theirs")
	if err != nil {
		t.Fatal(err)
	}
	n, err := mine.ReleaseAll(ctx)
	if n != 5 || err != nil {
		t.Fatalf("ReleaseAll = %d, %v; want 5, nil", n, err)
	}
	if mine.Held() != 0 {
		t.Fatalf("%d locks still tracked", mine.Held())
	}
	if v, _ := s.Client(t).Get(ctx, their.Key()).Result(); v != their.Holder() {
		t.Fatal("ReleaseAll deleted another instance's lock (the seed's cleanup_all fault)")
	}
}

func newClientManager(addr string, opts ...lock.Option) (*lock.Manager, *redis.Client) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	return lock.NewManager(rdb, opts...), rdb
}
