package app

import (
	"context"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/bidder/bidder/worker"
)

// Snapshot is what a summary line says about one marketplace. Counters
// (since the process started) are shown as their growth over the interval,
// the other fields as they are now. A new number is a field here, a line in
// MarshalLogObject and a line in the source that fills it.
type Snapshot struct {
	Placed, Skipped, Failed float64 // counters: decisions this process made

	// Budget: bids left in the current UTC hour and day windows, -1 for a
	// window without a limit; only with a budget (HasBudget).
	HasBudget             bool
	BudgetHour, BudgetDay int
	BudgetErr             string // the budget could not be read
}

// delta is s with its counters replaced by their growth since prev.
func (s Snapshot) delta(prev Snapshot) Snapshot {
	s.Placed -= prev.Placed
	s.Skipped -= prev.Skipped
	s.Failed -= prev.Failed
	return s
}

// MarshalLogObject writes the line's fields; an unlimited window is left out.
func (s Snapshot) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddInt64("placed", int64(s.Placed))
	enc.AddInt64("skipped", int64(s.Skipped))
	enc.AddInt64("failed", int64(s.Failed))
	switch {
	case s.BudgetErr != "":
		enc.AddString("budget_error", s.BudgetErr)
	case s.HasBudget:
		if s.BudgetHour >= 0 {
			enc.AddInt64("budget_hour_left", int64(s.BudgetHour))
		}
		if s.BudgetDay >= 0 {
			enc.AddInt64("budget_day_left", int64(s.BudgetDay))
		}
	}
	return nil
}

// summarizer logs one line per marketplace every interval, so an operator
// sees the worker's progress at info while the per-posting lines are debug.
type summarizer struct {
	log    *zap.Logger
	every  time.Duration
	ids    []string // the marketplaces, in config order
	source func(context.Context) map[string]Snapshot
	prev   map[string]Snapshot
}

// run logs until ctx ends. The first line comes one interval after start.
func (s *summarizer) run(ctx context.Context) {
	s.prev = s.source(ctx)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.tick(ctx)
		}
	}
}

func (s *summarizer) tick(ctx context.Context) {
	now := s.source(ctx)
	for _, id := range s.ids {
		s.log.Info("summary", zap.String("marketplace", id), zap.Stringer("interval", s.every),
			zap.Inline(now[id].delta(s.prev[id])))
	}
	s.prev = now
}

// snapshots reads the worker's counters from the process registry (the
// numbers /metrics shows) and each marketplace's budget from Redis.
func (a *App) snapshots(ctx context.Context) map[string]Snapshot {
	out := make(map[string]Snapshot, len(a.Markets))
	fams, err := a.Registry.Gather()
	if err != nil {
		a.Log.Debug("summary: gathering metrics", zap.Error(err))
	}
	for _, f := range fams {
		if f.GetName() != worker.MetricBids {
			continue
		}
		for _, m := range f.GetMetric() {
			var id, outcome string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "marketplace":
					id = l.GetValue()
				case "outcome":
					outcome = l.GetValue()
				}
			}
			s := out[id]
			switch outcome {
			case worker.OutcomePlaced:
				s.Placed += m.GetCounter().GetValue()
			case worker.OutcomeSkipped:
				s.Skipped += m.GetCounter().GetValue()
			case worker.OutcomeFailed:
				s.Failed += m.GetCounter().GetValue()
			}
			out[id] = s
		}
	}
	for id, m := range a.Markets {
		if m.Budget == nil {
			continue
		}
		s := out[id]
		s.HasBudget = true
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s.BudgetHour, s.BudgetDay, err = m.Budget.Left(rctx, id, time.Now())
		cancel()
		if err != nil {
			s.BudgetErr = err.Error() // go-redis errors carry no credentials
		}
		out[id] = s
	}
	return out
}
