package scanner

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zapcore"

	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/worker"
)

// scanSlots returns the slot starts of the scan tasks of mp, sorted.
func (e *env) scanSlots(t *testing.T, mp string) []int64 {
	t.Helper()
	var out []int64
	for id := range e.taskIDs(t, worker.QueueScans) {
		rest, ok := strings.CutPrefix(id, "scan:"+mp+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			t.Fatalf("scan task ID %q", id)
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// runScheduler runs s until the test ends, failing the test if Run fails.
func runScheduler(t *testing.T, ctx context.Context, s *Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Scheduler.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestThreeSchedulersEnqueueEachSlotOnce(t *testing.T) {
	e := newEnv(t)
	// Mid-second, so slots must be truncated to the epoch-aligned second.
	t0 := time.Unix(1_764_237_600, 345_000_000)
	clock := newManualClock(t0)
	cfg := StaticConfig{{MarketplaceID: testMP, Spec: "@every 1s"}}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		client := asynq.NewClientFromRedisClient(e.rdb)
		t.Cleanup(func() { _ = client.Close() })
		s := NewScheduler(client, cfg, WithClock(clock), WithReloadInterval(time.Hour),
			WithSchedulerMetrics(e.metrics), WithSchedulerLogger(e.log))
		runScheduler(t, ctx, s)
	}
	waitAll := func(slot int) {
		wait.Until(t, 10*time.Second, fmt.Sprintf("three schedulers to handle slot %d", slot),
			func() bool { return clock.Waiting() == 3 })

	}
	waitAll(0)
	for i := 1; i < 10; i++ {
		clock.Advance(time.Second)
		waitAll(i)
	}

	got := e.scanSlots(t, testMP)
	if len(got) != 10 {
		t.Fatalf("%d scan tasks for 10 slots: %v", len(got), got)
	}
	for i, s := range got {
		if want := t0.Unix() + int64(i); s != want {
			t.Fatalf("slot %d starts at %d, want %d", i, s, want)
		}
	}
	if v := testutil.ToFloat64(e.metrics.slots.WithLabelValues(testMP, SlotEnqueued)); v != 10 {
		t.Errorf("slots{enqueued} = %v, want 10", v)
	}
	if v := testutil.ToFloat64(e.metrics.slots.WithLabelValues(testMP, SlotDuplicate)); v != 20 {
		t.Errorf("slots{duplicate} = %v, want 20", v)
	}
	info, err := e.insp.GetTaskInfo(worker.QueueScans, ScanTaskID(testMP, time.Unix(got[0], 0)))
	if err != nil || info.Type != TypeScan || info.Retention < time.Second {
		t.Fatalf("scan task: %+v, %v", info, err)
	}
}

func TestMissedSlotsAreNotReplayed(t *testing.T) {
	e := newEnv(t)
	t0 := time.Unix(1_764_237_600, 0)
	clock := newManualClock(t0)
	cfg := StaticConfig{{MarketplaceID: testMP, Spec: "@every 1s"}}
	s1 := NewScheduler(e.client, cfg, WithClock(clock))
	stop := runScheduler(t, context.Background(), s1)
	wait.Until(t, 10*time.Second, "first scheduler to wait", func() bool { return clock.Waiting() == 1 })
	stop()

	// Nothing runs for ten slots, then an instance starts.
	clock.Advance(10*time.Second + 500*time.Millisecond)
	s2 := NewScheduler(e.client, cfg, WithClock(clock))
	runScheduler(t, context.Background(), s2)
	wait.Until(t, 10*time.Second, "the new scheduler's current slot", func() bool { return len(e.scanSlots(t, testMP)) >= 2 })
	// Advance fired (and dropped) the stopped scheduler's timer, so one
	// pending timer means the new scheduler is done with its start.
	wait.Until(t, 10*time.Second, "the new scheduler to wait", func() bool { return clock.Waiting() == 1 })

	if got := e.scanSlots(t, testMP); len(got) != 2 || got[0] != t0.Unix() || got[1] != t0.Unix()+10 {
		t.Fatalf("slots %v, want only %d and the current %d", got, t0.Unix(), t0.Unix()+10)
	}
}

func TestSchedulerRealClockIsWallAligned(t *testing.T) {
	e := newEnv(t)
	cfg := StaticConfig{{MarketplaceID: testMP, Spec: "@every 1s"}}
	start := time.Now()
	for i := 0; i < 2; i++ {
		client := asynq.NewClientFromRedisClient(e.rdb)
		t.Cleanup(func() { _ = client.Close() })
		runScheduler(t, context.Background(), NewScheduler(client, cfg))
	}
	wait.Until(t, 10*time.Second, "three slots", func() bool { return len(e.scanSlots(t, testMP)) >= 3 })
	got := e.scanSlots(t, testMP)
	// The schedulers start within a few ms of start, which may just cross
	// into the next second.
	if got[0] != start.Unix() && got[0] != start.Unix()+1 {
		t.Errorf("first slot %d, want the second the schedulers started in, %d", got[0], start.Unix())
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("slots %v are not consecutive seconds", got)
		}
	}
}

// mutableConfig is a ConfigProvider the test edits.
type mutableConfig struct {
	mu   sync.Mutex
	list []MarketplaceSchedule
	err  error
}

func (c *mutableConfig) Schedules(context.Context) ([]MarketplaceSchedule, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]MarketplaceSchedule(nil), c.list...), c.err
}

func (c *mutableConfig) set(list []MarketplaceSchedule, err error) {
	c.mu.Lock()
	c.list, c.err = list, err
	c.mu.Unlock()
}

func TestScheduleReloadWithoutRestart(t *testing.T) {
	e := newEnv(t)
	t0 := time.Unix(1_764_237_600, 0) // a multiple of 60
	clock := newManualClock(t0)
	cfg := &mutableConfig{list: []MarketplaceSchedule{{MarketplaceID: testMP, Spec: "@every 60s"}}}
	s := NewScheduler(e.client, cfg, WithClock(clock), WithReloadInterval(30*time.Second),
		WithSchedulerLogger(e.log), WithSchedulerMetrics(e.metrics))
	runScheduler(t, context.Background(), s)
	wait.Until(t, 10*time.Second, "first slot", func() bool { return len(e.scanSlots(t, testMP)) == 1 })

	// On demand: 60s -> 1s takes effect at the next second, not in a minute.
	cfg.set([]MarketplaceSchedule{{MarketplaceID: testMP, Spec: "@every 1s"}}, nil)
	s.Reload()
	wait.Until(t, 10*time.Second, "the reload", func() bool { return s.Schedules()[testMP] == "@every 1s" })
	clock.Advance(time.Second)
	wait.Until(t, 10*time.Second, "a 1s slot", func() bool { return len(e.scanSlots(t, testMP)) == 2 })
	if got := e.scanSlots(t, testMP); got[1] != t0.Unix()+1 {
		t.Fatalf("slots %v", got)
	}
	if n := e.logs.FilterMessage("schedule changed").FilterField(zapString("old_spec", "@every 60s")).Len(); n != 1 {
		t.Errorf("%d 'changed' logs with the old spec", n)
	}

	// An invalid spec is logged and the old schedule kept; a new
	// marketplace in the same read is still added.
	cfg.set([]MarketplaceSchedule{{MarketplaceID: testMP, Spec: "@every soon"}, {MarketplaceID: "other", Spec: "*/5 * * * *"}}, nil)
	s.Reload()
	wait.Until(t, 10*time.Second, "the invalid reload", func() bool {
		return testutil.ToFloat64(e.metrics.reloads.WithLabelValues("invalid_spec")) == 1
	})

	if got := s.Schedules(); got[testMP] != "@every 1s" || got["other"] != "*/5 * * * *" {
		t.Fatalf("schedules after an invalid reload: %v", got)
	}
	if e.logs.FilterLevelExact(zapcore.ErrorLevel).FilterField(zapString("spec", "@every soon")).Len() != 1 {
		t.Error("the invalid spec was not logged")
	}

	// A failing provider keeps everything.
	cfg.set(nil, errors.New("config file unreadable"))
	s.Reload()
	wait.Until(t, 10*time.Second, "the failed read", func() bool {
		return testutil.ToFloat64(e.metrics.reloads.WithLabelValues("error")) == 1
	})

	if got := s.Schedules(); len(got) != 2 {
		t.Fatalf("schedules after a failed read: %v", got)
	}

	// Periodic re-read, no Reload call: removal shows up after the interval.
	cfg.set([]MarketplaceSchedule{{MarketplaceID: "other", Spec: "*/5 * * * *"}}, nil)
	// Advance in steps: the scheduler may re-arm its reload timer after any
	// single jump (a manual clock fires only timers that exist when it
	// moves), and the test must not depend on which goroutine runs first.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok := s.Schedules()[testMP]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the periodic reload")
		}
		clock.Advance(time.Second)
		time.Sleep(5 * time.Millisecond)
	}
	if e.logs.FilterMessage("schedule removed").Len() != 1 || e.logs.FilterMessage("schedule added").Len() != 1 {
		t.Error("added/removed not logged")
	}
}

func TestSchedulerRefusesBadStartConfig(t *testing.T) {
	e := newEnv(t)
	// Run must return at once; the timeout only keeps a regression from
	// hanging the suite.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := NewScheduler(e.client, StaticConfig{{MarketplaceID: "upwork", Spec: "0 25 * * *"}})
	err := s.Run(ctx)
	if !errors.Is(err, ErrBadSchedule) || !strings.Contains(err.Error(), "upwork") || !strings.Contains(err.Error(), "0 25 * * *") {
		t.Fatalf("Run = %v, want ErrBadSchedule naming upwork and its spec", err)
	}
	boom := errors.New("boom")
	s = NewScheduler(e.client, ConfigProviderFunc(func(context.Context) ([]MarketplaceSchedule, error) { return nil, boom }))
	if err := s.Run(ctx); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the provider's error", err)
	}
}

// TestScanAndTrackTasksOnTheMarketplacesQueue: with a queue per
// marketplace, scan and tracker tasks go to "scans:<mp>", which only
// workers configured for the marketplace serve (a fleet without its
// adapter would otherwise take them and archive them), each once per slot.
func TestScanAndTrackTasksOnTheMarketplacesQueue(t *testing.T) {
	e := newEnv(t)
	t0 := time.Unix(1_764_237_600, 0)
	clock := newManualClock(t0)
	cfg := StaticConfig{{MarketplaceID: testMP, Spec: "@every 10s"}, {MarketplaceID: testMP, Spec: "@every 60s", Task: TaskTrack}}
	for i := 0; i < 2; i++ {
		runScheduler(t, context.Background(), NewScheduler(e.client, cfg, WithClock(clock), WithScanQueuePerMarketplace(true)))
	}
	q := worker.MarketplaceScanQueue(testMP)
	wait.Until(t, 10*time.Second, "a scan and a tracker task", func() bool { return len(e.taskIDs(t, q)) == 2 })
	wait.Until(t, 10*time.Second, "both schedulers to wait", func() bool { return clock.Waiting() == 2 })
	ids := e.taskIDs(t, q)
	if !ids[ScanTaskID(testMP, t0)] || !ids[TrackTaskID(testMP, t0)] || len(ids) != 2 {
		t.Fatalf("tasks on %s: %v", q, ids)
	}
	if shared := e.taskIDs(t, worker.QueueScans); len(shared) != 0 {
		t.Fatalf("tasks on the shared scans queue: %v", shared)
	}
}
