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

	// Budgets: one per bid budget, as it is now (worker.Marketplace's
	// Budgets: the marketplace's own, or each account's in agency mode).
	Budgets []BudgetLeft
}

// BudgetLeft is what one bid budget has left: bids in the current UTC hour
// and day windows, -1 for a window without a limit.
type BudgetLeft struct {
	Account   string // "": the marketplace has one account
	Hour, Day int
	Err       string // the budget could not be read
}

// marshal writes one budget's fields with prefix before each name; an
// unlimited window is left out.
func (b BudgetLeft) marshal(enc zapcore.ObjectEncoder, prefix string) {
	if b.Err != "" {
		enc.AddString(prefix+"error", b.Err)
		return
	}
	if b.Hour >= 0 {
		enc.AddInt64(prefix+"hour_left", int64(b.Hour))
	}
	if b.Day >= 0 {
		enc.AddInt64(prefix+"day_left", int64(b.Day))
	}
}

// accountBudgets is an agency's budgets as a log array, one object each.
type accountBudgets []BudgetLeft

func (bs accountBudgets) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, b := range bs {
		if err := enc.AppendObject(zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddString("account", b.Account)
			b.marshal(enc, "")
			return nil
		})); err != nil {
			return err
		}
	}
	return nil
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
	case len(s.Budgets) == 1 && s.Budgets[0].Account == "":
		s.Budgets[0].marshal(enc, "budget_")
	case len(s.Budgets) > 0:
		return enc.AddArray("budgets", accountBudgets(s.Budgets))
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
		s := out[id]
		for _, sb := range m.Budgets(id) {
			b := BudgetLeft{Account: sb.Account}
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			b.Hour, b.Day, err = sb.Budget.Left(rctx, sb.Scope, time.Now())
			cancel()
			if err != nil {
				b.Err = err.Error() // go-redis errors carry no credentials
			}
			s.Budgets = append(s.Budgets, b)
		}
		out[id] = s
	}
	return out
}
