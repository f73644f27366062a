package app

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/scanner"
)

// runScheduler enqueues scan tasks on each marketplace's schedule. Every
// instance may run one: a slot's task ID is the same everywhere, so asynq
// keeps one scan per marketplace per slot. Schedules are re-read from the
// config every reload interval and on each value from reload (SIGHUP, see
// watchSIGHUP); other settings need a restart.
func (a *App) runScheduler(ctx context.Context, up *atomic.Bool, reload <-chan struct{}) error {
	s := scanner.NewScheduler(a.Client, scanner.ConfigProviderFunc(a.schedules),
		scanner.WithSchedulerLogger(a.Log.Named("scheduler")),
		scanner.WithSchedulerMetrics(a.ScanMet),
		scanner.WithScanQueuePerMarketplace(a.Cfg.Worker.QueuePerMarketplace))
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-reload:
				s.Reload()
			}
		}
	}()
	up.Store(true)
	a.Log.Info("scheduler started", zapSchedules(schedulesOf(a.Cfg, a.tracked())))
	defer up.Store(false)
	err := s.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// schedules is the scheduler's config provider. Only marketplaces this
// process was started with can be scanned (their adapters exist); a new one
// in the file is reported and waits for a restart.
func (a *App) schedules(context.Context) ([]scanner.MarketplaceSchedule, error) {
	cfg := a.Cfg
	if a.Reload != nil {
		fresh, err := a.Reload()
		if err != nil {
			return nil, err // the scheduler logs it and keeps the old schedules
		}
		cfg = fresh
	}
	list := schedulesOf(cfg, a.tracked())
	return slices.DeleteFunc(list, func(s scanner.MarketplaceSchedule) bool {
		if _, ok := a.Adapters[s.MarketplaceID]; ok {
			return false
		}
		if s.Task != scanner.TaskTrack {
			a.Log.Warn("new marketplace in config: restart to scan it", zap.String("marketplace", s.MarketplaceID))
		}
		return true
	}), nil
}

// schedulesOf is every marketplace's scan schedule, and a tracker schedule
// for each of tracked.
func schedulesOf(cfg config.Config, tracked []string) []scanner.MarketplaceSchedule {
	list := make([]scanner.MarketplaceSchedule, 0, len(cfg.Marketplaces)+len(tracked))
	for _, m := range cfg.Marketplaces {
		list = append(list, scanner.MarketplaceSchedule{MarketplaceID: m.ID, Spec: m.Scan.Schedule})
	}
	if every := time.Duration(cfg.Tracker.Every); every > 0 {
		for _, id := range tracked {
			list = append(list, scanner.MarketplaceSchedule{MarketplaceID: id, Spec: "@every " + every.String(), Task: scanner.TaskTrack})
		}
	}
	return list
}

func zapSchedules(list []scanner.MarketplaceSchedule) zap.Field {
	m := make(map[string]string, len(list))
	for _, s := range list {
		k := s.MarketplaceID
		if s.Task == scanner.TaskTrack {
			k = "track:" + k
		}
		m[k] = s.Spec
	}
	return zap.Any("schedules", m)
}
