package main

import (
	"github.com/spf13/cobra"
)

func newMonitorCommand(e env) *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Serve the asynqmon UI under /monitoring/ and cluster-wide queue metrics",
		Long: `Serve the asynqmon web UI under /monitoring/ (read-only unless
http.monitoring.read_only is false) and /metrics with asynq's queue metrics
(asynq_queue_size, asynq_queue_latency_seconds, ...). Those are cluster-wide:
export them from one monitor (or run) process, not from every worker.

asynqmon has no authentication: on a non-loopback address bidder refuses to
serve it unless http.monitoring.basic_auth is set (or
allow_unauthenticated_remote: true).` + daemonFlagsHelp,
		Example: `  bidder monitor --config prod.yaml
  BIDDER_UI_PASSWORD=... bidder monitor --config configs/production-sentinel.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd, &f, "monitor")
		},
	}
	f.add(cmd, true)
	return cmd
}
