package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bidder/bidder/internal/ops"
	"github.com/bidder/bidder/lock"
)

func newLocksCommand(e env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "locks",
		Short: "List or release per-posting bid locks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("locks needs a subcommand: list or release")}
		},
	}
	cmd.AddCommand(newLocksListCommand(e), newLocksReleaseCommand(e))
	return cmd
}

func newLocksListCommand(e env) *cobra.Command {
	var f configFlags
	var mp string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List held bid locks with holder and remaining TTL (SCAN, safe on production)",
		Example: `  REDIS_URL=redis://redis:6379/0 bidder locks list
  bidder locks list --config prod.yaml --marketplace upwork`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validMarketplaceFilter(mp); err != nil {
				return err
			}
			cfg, conn, err := opsConn(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer conn.Close()
			keys := lock.Keys{Prefix: lock.DefaultKeyPrefix, HashTags: cfg.Redis.HashTags}
			list, err := ops.ListLocks(cmd.Context(), conn.Client, keys, mp)
			if err != nil {
				return fmt.Errorf("locks list: %w", escaped{err})
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MARKETPLACE\tPOSTING\tHOLDER\tTTL")
			for _, l := range list {
				// Key parts and holder are read from Redis: printed quoted.
				fmt.Fprintf(tw, "%q\t%q\t%q\t%s\n", l.Marketplace, l.Posting, l.Holder, l.TTL.Round(time.Millisecond))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "%d lock(s)\n", len(list))
			return err
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&mp, "marketplace", "", "only this marketplace")
	return cmd
}

func newLocksReleaseCommand(e env) *cobra.Command {
	var f configFlags
	var mp, posting string
	var force bool
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Release one posting's lock (needs --force)",
		Long: `Release one posting's lock. It reads the holder, then deletes the key only if
that holder still has it (compare-and-delete), so a lock another worker took
meanwhile is left alone. Releasing a live holder's lock lets a second worker in:
the ledger and fencing still stop a second bid, but only do this for a holder
you know is dead (locks expire by themselves after lock.ttl anyway).`,
		Example: `  bidder locks release --marketplace upwork --posting 12345 --force`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mp == "" || posting == "" {
				return usageError{errors.New("--marketplace and --posting are required")}
			}
			if err := lock.ValidateIDs(mp, posting); err != nil {
				return usageError{err}
			}
			if !force {
				return usageError{errors.New("refusing to release a lock without --force")}
			}
			cfg, conn, err := opsConn(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer conn.Close()
			keys := lock.Keys{Prefix: lock.DefaultKeyPrefix, HashTags: cfg.Redis.HashTags}
			info, err := ops.ReadLock(cmd.Context(), conn.Client, keys, mp, posting)
			if err != nil {
				return fmt.Errorf("locks release: %w", escaped{err})
			}
			if info.Holder == "" {
				_, err := fmt.Fprintf(e.stdout, "%s: not locked\n", info.Key)
				return err
			}
			if err := ops.ReleaseLock(cmd.Context(), conn.Client, info.Key, info.Holder); err != nil {
				return fmt.Errorf("locks release: %w", escaped{err})
			}
			_, err = fmt.Fprintf(e.stdout, "%s: released (holder %q, %s left)\n", info.Key, info.Holder, info.TTL.Round(time.Millisecond))
			return err
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&mp, "marketplace", "", "marketplace ID (required)")
	cmd.Flags().StringVar(&posting, "posting", "", "posting ID (required)")
	cmd.Flags().BoolVar(&force, "force", false, "really release it")
	return cmd
}
