package app

import (
	"context"
	"sync/atomic"
)

// runScheduler is filled in once the scanner's Scheduler lands.
func (a *App) runScheduler(ctx context.Context, up *atomic.Bool) error {
	up.Store(true)
	<-ctx.Done()
	return nil
}
