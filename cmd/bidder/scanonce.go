package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/scanner"
)

func newScanOnceCommand(e env) *cobra.Command {
	var f configFlags
	var mp string
	cmd := &cobra.Command{
		Use:   "scan-once",
		Short: "Scan one marketplace now and print what the scan did",
		Long: `Scan one marketplace now, outside its schedule: page from the stored cursor,
skip postings the ledger already decided, enqueue one bid task per new posting
(workers place the bids). It takes the same scan lock as scheduled scans, so
it fails instead of racing one.`,
		Example: `  bidder scan-once --config configs/single.yaml --marketplace sandbox`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mp == "" {
				return usageError{errors.New("--marketplace is required")}
			}
			// No role runs here, but a scan enqueues into Redis: the same
			// checks as a scheduler's, the marketplace checked below.
			a, err := f.setup(cmd.Context(), app.Roles{Name: "scan-once"})
			if err != nil {
				return err
			}
			defer a.Close()
			if _, ok := a.Adapters[mp]; !ok {
				return usageError{fmt.Errorf("--marketplace %q is not in the config", mp)}
			}
			if err := a.Conn.Ping(cmd.Context(), 3*time.Second); err != nil {
				return err
			}
			sum, err := scanner.ScanOnce(cmd.Context(), a.Scan, mp)
			fmt.Fprintln(e.stdout, sum.String())
			if err != nil {
				return fmt.Errorf("scan-once: %w", escaped{err})
			}
			return nil
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&mp, "marketplace", "", "marketplace ID (required)")
	return cmd
}
