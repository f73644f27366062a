package main

import (
	"github.com/spf13/cobra"
)

func newScannerCommand(e env) *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "scanner",
		Short: "Enqueue scan tasks on each marketplace's schedule (workers run them)",
		Long: `Run the scan scheduler: on each marketplace's scan.schedule it enqueues one scan
task per wall-clock slot. Several schedulers may run at once: every instance
names a slot's task the same way, so asynq keeps one. The scans themselves are
run by 'bidder worker'.` + daemonFlagsHelp,
		Example: `  REDIS_URL=redis://redis:6379/0 bidder scanner --config configs/single.yaml --http-addr 127.0.0.1:8082`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd, &f, "scanner")
		},
	}
	f.add(cmd, true)
	return cmd
}
