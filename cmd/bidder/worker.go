package main

import (
	"github.com/spf13/cobra"
)

func newWorkerCommand(e env) *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run scan and bid tasks (with /metrics, /healthz, /readyz)",
		Long: `Run the asynq worker: it executes scan tasks (paging marketplaces, enqueueing
bid tasks) and bid tasks (lock, ledger, rules, placement). Run as many as you
like; the lock and the ledger keep every posting to one bid.` + daemonFlagsHelp,
		Example: `  REDIS_URL=redis://redis:6379/0 bidder worker --config configs/single.yaml
  BIDDER_WORKER_CONCURRENCY=50 bidder worker --config prod.yaml --http-addr 0.0.0.0:8081`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd, &f, "worker")
		},
	}
	f.add(cmd, true)
	return cmd
}
