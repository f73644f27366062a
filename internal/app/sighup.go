package app

import (
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
)

// watchSIGHUP handles SIGHUP until stop is called. Its default action ends
// the process: a closing terminal or an operator's `kill -HUP` (meant as
// "reload") would stop a worker mid-bid. Where the role can reload, reload
// gets the signal (coalesced: a reload already pending covers it); elsewhere
// it is logged and ignored.
func watchSIGHUP(log *zap.Logger, role string, reload chan<- struct{}) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			case <-hup:
			}
			if reload == nil {
				log.Info("SIGHUP: nothing to reload in this role; ignored", zap.String("role", role))
				continue
			}
			log.Info("SIGHUP: reloading schedules")
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-exited
	}
}
