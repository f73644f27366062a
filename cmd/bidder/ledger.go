package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/bidder/bidder/internal/ops"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
)

func newLedgerCommand(e env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Read the per-posting decision ledger",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("ledger needs a subcommand: get or stats")}
		},
	}
	cmd.AddCommand(newLedgerGetCommand(e), newLedgerStatsCommand(e))
	return cmd
}

func newLedgerGetCommand(e env) *cobra.Command {
	var f configFlags
	var mp, posting string
	cmd := &cobra.Command{
		Use:     "get",
		Short:   "Show one posting's decision",
		Example: `  bidder ledger get --marketplace upwork --posting 12345`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mp == "" || posting == "" {
				return usageError{errors.New("--marketplace and --posting are required")}
			}
			if err := lock.ValidateIDs(mp, posting); err != nil {
				return usageError{err}
			}
			cfg, conn, err := opsConn(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer conn.Close()
			led := ledger.New(conn.Client, ledger.WithHashTags(cfg.Redis.HashTags))
			r, err := led.Get(cmd.Context(), mp, posting)
			if err != nil {
				return fmt.Errorf("ledger get: %w", escaped{err})
			}
			// Every field is read from Redis: printed quoted.
			state := fmt.Sprintf("%q", r.State)
			if r.State == ledger.StateNone {
				state = "none (never decided)"
			}
			w := e.stdout
			fmt.Fprintf(w, "key:      %s\nstate:    %s\n", led.Key(mp, posting), state)
			if r.State != ledger.StateNone {
				fmt.Fprintf(w, "token:    %d\nat:       %s\nworker:   %q\n", r.Token, r.At.UTC().Format(time.RFC3339Nano), r.Worker)
			}
			if r.BidID != "" || r.Amount != 0 {
				fmt.Fprintf(w, "bid:      %q\namount:   %.2f %q\n", r.BidID, r.Amount, r.Currency)
			}
			if r.Rule != "" || r.Reason != "" {
				fmt.Fprintf(w, "rule:     %q\nreason:   %q\n", r.Rule, r.Reason)
			}
			return nil
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&mp, "marketplace", "", "marketplace ID (required)")
	cmd.Flags().StringVar(&posting, "posting", "", "posting ID (required)")
	return cmd
}

func newLedgerStatsCommand(e env) *cobra.Command {
	var f configFlags
	var mp string
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Count ledger records by state (SCAN, safe on production)",
		Example: `  bidder ledger stats
  bidder ledger stats --marketplace upwork`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, conn, err := opsConn(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer conn.Close()
			counts, err := ops.LedgerStats(cmd.Context(), conn.Client, ledger.DefaultKeyPrefix, mp)
			if err != nil {
				return fmt.Errorf("ledger stats: %w", escaped{err})
			}
			known := []ledger.State{ledger.StateIntent, ledger.StatePlaced, ledger.StateSkipped, ledger.StateFailed, ledger.StateDryRun}
			states := slices.Clone(known)
			for s := range counts {
				if !slices.Contains(states, s) {
					states = append(states, s)
				}
			}
			total := 0
			for _, s := range states {
				name := string(s)
				if !slices.Contains(known, s) {
					name = fmt.Sprintf("%q", s) // read from Redis
				}
				fmt.Fprintf(e.stdout, "%-8s %d\n", name, counts[s])
				total += counts[s]
			}
			_, err = fmt.Fprintf(e.stdout, "%-8s %d\n", "total", total)
			return err
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&mp, "marketplace", "", "only this marketplace")
	return cmd
}
