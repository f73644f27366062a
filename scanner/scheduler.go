package scanner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/bidder/bidder/worker"
)

// Scheduler defaults.
const (
	DefaultReloadInterval = 30 * time.Second
	// DefaultSkewMargin is added to a slot's length for the retention of
	// its scan task, covering clock differences between instances.
	DefaultSkewMargin = time.Minute
	// enqueueRetry is how soon a slot whose enqueue failed is tried again.
	enqueueRetry = time.Second
)

// ConfigProvider supplies the schedules. It is read at Run, every reload
// interval and on Reload, so schedules change without a restart.
type ConfigProvider interface {
	Schedules(ctx context.Context) ([]MarketplaceSchedule, error)
}

// ConfigProviderFunc adapts a function to ConfigProvider.
type ConfigProviderFunc func(ctx context.Context) ([]MarketplaceSchedule, error)

// Schedules calls f.
func (f ConfigProviderFunc) Schedules(ctx context.Context) ([]MarketplaceSchedule, error) {
	return f(ctx)
}

// StaticConfig is a ConfigProvider that never changes.
type StaticConfig []MarketplaceSchedule

// Schedules returns a copy of c.
func (c StaticConfig) Schedules(context.Context) ([]MarketplaceSchedule, error) {
	return slices.Clone(c), nil
}

// Clock is the Scheduler's time source; tests replace it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SchedulerOption configures a Scheduler.
type SchedulerOption func(*Scheduler)

// WithSchedulerLogger sets the logger (default: none).
func WithSchedulerLogger(l *zap.Logger) SchedulerOption { return func(s *Scheduler) { s.log = l } }

// WithSchedulerMetrics sets the metrics (default: an unregistered set).
func WithSchedulerMetrics(m *Metrics) SchedulerOption { return func(s *Scheduler) { s.metrics = m } }

// WithReloadInterval sets how often the provider is re-read (default 30s).
func WithReloadInterval(d time.Duration) SchedulerOption {
	return func(s *Scheduler) { s.reloadEvery = d }
}

// WithSkewMargin sets what is added to a slot's length for its task's
// retention (default 1m): the largest clock difference between instances
// that still cannot enqueue one slot twice.
func WithSkewMargin(d time.Duration) SchedulerOption { return func(s *Scheduler) { s.skew = d } }

// WithClock replaces the wall clock (tests).
func WithClock(c Clock) SchedulerOption { return func(s *Scheduler) { s.clock = c } }

// WithScanQueuePerMarketplace puts each marketplace's scan and tracker tasks on
// worker.MarketplaceScanQueue(mp) instead of the shared "scans" queue, so
// only workers configured for the marketplace take them.
func WithScanQueuePerMarketplace(on bool) SchedulerOption {
	return func(s *Scheduler) { s.perMarket = on }
}

// WithTaskOptions adds asynq options to every scan task (e.g. MaxRetry).
func WithTaskOptions(opts ...asynq.Option) SchedulerOption {
	return func(s *Scheduler) { s.taskOpts = append(s.taskOpts, opts...) }
}

// Scheduler enqueues one scan task per marketplace per slot, and one tracker
// task per marketplace per tracker slot. Every instance may run one: slots
// come from the wall clock and name the task, so asynq accepts the first
// instance's enqueue of a slot and refuses the rest.
type Scheduler struct {
	client      *asynq.Client
	provider    ConfigProvider
	log         *zap.Logger
	metrics     *Metrics
	reloadEvery time.Duration
	skew        time.Duration
	clock       Clock
	taskOpts    []asynq.Option
	perMarket   bool
	reloadCh    chan struct{}

	mu        sync.Mutex
	schedules map[string]Schedule
	last      map[string]int64 // entry key -> start (Unix s) of the last slot enqueued or found taken
}

// NewScheduler builds a Scheduler; Run starts it.
func NewScheduler(client *asynq.Client, provider ConfigProvider, opts ...SchedulerOption) *Scheduler {
	s := &Scheduler{
		client:      client,
		provider:    provider,
		reloadEvery: DefaultReloadInterval,
		skew:        DefaultSkewMargin,
		clock:       realClock{},
		reloadCh:    make(chan struct{}, 1),
		schedules:   map[string]Schedule{},
		last:        map[string]int64{},
	}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	if s.reloadEvery <= 0 {
		s.reloadEvery = DefaultReloadInterval
	}
	if s.skew < 0 {
		s.skew = 0
	}
	return s
}

// Reload asks Run to re-read the provider now. It never blocks.
func (s *Scheduler) Reload() {
	select {
	case s.reloadCh <- struct{}{}:
	default: // a reload is already pending
	}
}

// Schedules returns the schedules in force, by marketplace (scans) and
// "track:<marketplace>" (tracker runs).
func (s *Scheduler) Schedules() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.schedules))
	for k, v := range s.schedules {
		out[k] = v.String()
	}
	return out
}

// Run enqueues slots until ctx ends. The first provider read must succeed
// and be valid, so a bad config stops start-up; later reads that fail keep
// what is in force. On start only the current slot of each marketplace is
// enqueued: slots missed while no instance ran are not replayed, since one
// scan from the cursor catches up on all of them.
func (s *Scheduler) Run(ctx context.Context) error {
	list, err := s.provider.Schedules(ctx)
	if err != nil {
		return fmt.Errorf("scanner: read schedules: %w", err)
	}
	parsed, err := ValidateSchedules(list)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.schedules = parsed
	s.mu.Unlock()
	for id, sch := range parsed {
		task, mp := splitKey(id)
		s.log.Info("schedule", zap.String("task", task), zap.String("marketplace", mp), zap.String("spec", sch.String()))
	}
	nextReload := s.clock.Now().Add(s.reloadEvery)
	for {
		now := s.clock.Now()
		if !now.Before(nextReload) {
			s.reload(ctx)
			nextReload = now.Add(s.reloadEvery)
		}
		wake := s.tick(ctx, now)
		if wake.IsZero() || nextReload.Before(wake) {
			wake = nextReload
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.reloadCh:
			s.reload(ctx)
			nextReload = s.clock.Now().Add(s.reloadEvery)
		case <-s.clock.After(wake.Sub(now)):
		}
	}
}

// tick enqueues every marketplace's current slot not yet handled and
// returns when it next has something to do.
func (s *Scheduler) tick(ctx context.Context, now time.Time) time.Time {
	s.mu.Lock()
	scheds := make(map[string]Schedule, len(s.schedules))
	for k, v := range s.schedules {
		scheds[k] = v
	}
	s.mu.Unlock()

	var wake time.Time
	earlier := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	for id, sch := range scheds {
		slot, err := sch.Slot(now)
		if err != nil {
			// ParseSchedule rules this out; never spin on it.
			s.log.Error("cannot compute scan slot", zap.String("marketplace", id), zap.Error(err))
			earlier(now.Add(s.reloadEvery))
			continue
		}
		s.mu.Lock()
		last, seen := s.last[id]
		done := seen && last == slot.Start.Unix()
		s.mu.Unlock()
		if !done {
			if err := s.enqueue(ctx, id, slot); err != nil {
				earlier(now.Add(min(enqueueRetry, slot.End.Sub(now))))
				continue
			}
			s.mu.Lock()
			s.last[id] = slot.Start.Unix()
			s.mu.Unlock()
		}
		earlier(slot.End)
	}
	return wake
}

func (s *Scheduler) enqueue(ctx context.Context, key string, slot Slot) error {
	task, id := splitKey(key)
	// Retention counts from completion, so slot length plus skew keeps the
	// ID taken past the end of the slot on every instance's clock.
	build, taskID := NewScanTask, ScanTaskID
	if task == TaskTrack {
		build, taskID = NewTrackTask, TrackTaskID
	}
	opts := s.taskOpts
	if s.perMarket {
		opts = append([]asynq.Option{asynq.Queue(worker.MarketplaceScanQueue(id))}, opts...)
	}
	t, err := build(id, slot.Start, slot.Len()+s.skew, opts...)
	if err != nil {
		s.metrics.slots.WithLabelValues(id, SlotError).Inc()
		s.log.Error("cannot build scan task", zap.String("marketplace", id), zap.Error(err))
		return err
	}
	log := s.log.With(zap.String("task", task), zap.String("marketplace", id), zap.Time("slot", slot.Start))
	_, err = s.client.EnqueueContext(ctx, t)
	switch {
	case err == nil:
		// bidder_scan_slots_total counts scan slots only.
		if task == TaskScan {
			s.metrics.slots.WithLabelValues(id, SlotEnqueued).Inc()
		}
		log.Debug("slot enqueued")
		return nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		if task == TaskScan {
			s.metrics.slots.WithLabelValues(id, SlotDuplicate).Inc()
		}
		log.Debug("slot already enqueued by another instance")
		return nil
	default:
		if task == TaskScan {
			s.metrics.slots.WithLabelValues(id, SlotError).Inc()
		}
		log.Warn("enqueue failed; retrying", zap.Error(err))
		return fmt.Errorf("scanner: enqueue %s: %w", taskID(id, slot.Start), err)
	}
}

// reload re-reads the provider and applies the valid changes. An entry with
// an invalid spec keeps its old schedule (or stays absent); a failed read
// keeps everything.
func (s *Scheduler) reload(ctx context.Context) {
	list, err := s.provider.Schedules(ctx)
	if err != nil {
		s.metrics.reloads.WithLabelValues("error").Inc()
		s.log.Warn("cannot read scan schedules; keeping the current ones", zap.Error(err))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]Schedule, len(list))
	invalid := false
	for _, e := range list {
		k := e.key()
		sch, err := parseEntry(e)
		if err == nil {
			if _, dup := next[k]; dup {
				err = fmt.Errorf("%w: marketplace %q: listed twice", ErrBadSchedule, e.MarketplaceID)
			}
		}
		if err != nil {
			invalid = true
			old, had := s.schedules[k]
			s.log.Error("invalid schedule ignored; keeping the old one", zap.String("task", e.Task), zap.String("marketplace", e.MarketplaceID),
				zap.String("spec", e.Spec), zap.String("old_spec", old.String()), zap.Bool("had_old", had), zap.Error(err))
			if had {
				next[k] = old
			}
			continue
		}
		next[k] = sch
	}
	for id, old := range s.schedules {
		sch, ok := next[id]
		switch {
		case !ok:
			s.log.Info("schedule removed", zap.String("entry", id), zap.String("old_spec", old.String()))
			delete(s.last, id)
		case sch.String() != old.String():
			s.log.Info("schedule changed", zap.String("entry", id),
				zap.String("old_spec", old.String()), zap.String("spec", sch.String()))
		}
	}
	for id, sch := range next {
		if _, ok := s.schedules[id]; !ok {
			s.log.Info("schedule added", zap.String("entry", id), zap.String("spec", sch.String()))
		}
	}
	s.schedules = next
	if invalid {
		s.metrics.reloads.WithLabelValues("invalid_spec").Inc()
	} else {
		s.metrics.reloads.WithLabelValues("ok").Inc()
	}
}
