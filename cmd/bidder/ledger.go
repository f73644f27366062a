package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/ops"
	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/scanner"
)

func newLedgerCommand(e env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Read the per-posting decision ledger",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("ledger needs a subcommand: get, list, resume or stats")}
		},
	}
	cmd.AddCommand(newLedgerGetCommand(e), newLedgerListCommand(e), newLedgerResumeCommand(e), newLedgerStatsCommand(e))
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
			led := app.NewLedger(cfg, conn.Client)
			r, err := led.Get(cmd.Context(), mp, posting)
			if err != nil {
				return fmt.Errorf("ledger get: %w", escaped{err})
			}
			// Every field is read from Redis: strings are printed quoted.
			state := fmt.Sprintf("%q", r.State)
			if r.State == ledger.StateNone {
				state = "none (undecided)"
			}
			w := e.stdout
			fmt.Fprintf(w, "key:      %s\nstate:    %s\n", led.Key(mp, posting), state)
			if !r.At.IsZero() {
				fmt.Fprintf(w, "token:    %d\nat:       %s\nholder:   %q\n", r.Token, r.At.UTC().Format(time.RFC3339Nano), r.Holder)
			}
			if !r.SettledAt.IsZero() {
				fmt.Fprintf(w, "settled:  %s (no request of this intent can be in flight after it)\n", r.SettledAt.UTC().Format(time.RFC3339Nano))
			}
			if r.State == ledger.StateParked {
				from := fmt.Sprintf("%q", r.ParkedFrom)
				if r.ParkedFrom == "" {
					from = "undecided"
				}
				fmt.Fprintf(w, "parked:   %s, from %s\npark:     %q: %q\n", r.ParkedAt.UTC().Format(time.RFC3339Nano), from, r.ParkRule, r.ParkReason)
			}
			if !r.Discovered.IsZero() {
				fmt.Fprintf(w, "found:    %s\n", r.Discovered.UTC().Format(time.RFC3339Nano))
			}
			if r.BidID != "" || r.Amount != 0 {
				fmt.Fprintf(w, "bid:      %q\namount:   %.2f %q\n", r.BidID, r.Amount, r.Currency)
			}
			if r.Account != "" {
				fmt.Fprintf(w, "account:  %q\n", r.Account) // agency mode: the one that bids or bid
			}
			if r.State == ledger.StatePlaced {
				fmt.Fprintf(w, "outcome:  %s", r.Outcome)
				if !r.OutcomeAt.IsZero() {
					fmt.Fprintf(w, " (since %s)", r.OutcomeAt.UTC().Format(time.RFC3339Nano))
				}
				fmt.Fprintln(w)
			}
			if r.Proposal != "" {
				fmt.Fprintf(w, "proposal: %q\n", r.Proposal)
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
			if err := validMarketplaceFilter(mp); err != nil {
				return err
			}
			_, conn, err := opsConn(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer conn.Close()
			counts, err := ops.LedgerStats(cmd.Context(), conn.Client, ledger.DefaultKeyPrefix, mp)
			if err != nil {
				return fmt.Errorf("ledger stats: %w", escaped{err})
			}
			known := []ledger.State{ledger.StateNone, ledger.StateIntent, ledger.StateParked, ledger.StatePlaced, ledger.StateSkipped, ledger.StateFailed, ledger.StateDryRun}
			states := slices.Clone(known)
			for s := range counts {
				if !slices.Contains(states, s) {
					states = append(states, s)
				}
			}
			total := 0
			for _, s := range states {
				name := string(s)
				switch {
				case s == ledger.StateNone:
					name = "undecided"
				case !slices.Contains(known, s):
					name = fmt.Sprintf("%q", s) // read from Redis
				}
				fmt.Fprintf(e.stdout, "%-9s %d\n", name, counts[s])
				total += counts[s]
			}
			_, err = fmt.Fprintf(e.stdout, "%-9s %d\n", "total", total)
			return err
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&mp, "marketplace", "", "only this marketplace")
	return cmd
}

func newLedgerListCommand(e env) *cobra.Command {
	var f configFlags
	var mp, state string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List postings in a state (parked: from the parked index, cheap)",
		Long: `List a marketplace's postings in a state. Parked postings (their attempts
ran out; they wait for 'bidder ledger resume') come from the parked index and
cost one read each; any other state is found by SCAN over the ledger.`,
		Example: `  bidder ledger list --marketplace sandbox --state parked
  bidder ledger list --marketplace sandbox --state intent`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mp == "" {
				return usageError{errors.New("--marketplace is required")}
			}
			if err := lock.ValidateMarketplaceID(mp); err != nil {
				return usageError{err}
			}
			cfg, conn, err := opsConn(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer conn.Close()
			led := app.NewLedger(cfg, conn.Client)
			if ledger.State(state) != ledger.StateParked {
				ids, err := ops.ListState(cmd.Context(), conn.Client, ledger.DefaultKeyPrefix, mp, ledger.State(state), limit)
				if err != nil {
					return fmt.Errorf("ledger list: %w", escaped{err})
				}
				for _, id := range ids {
					// Read from Redis; one bare ID a line, for scripts.
					fmt.Fprintln(e.stdout, textsafe.Escape(id))
				}
				return nil
			}
			ps, err := ops.ListParked(cmd.Context(), led, mp, limit)
			if err != nil {
				return fmt.Errorf("ledger list: %w", escaped{err})
			}
			for _, p := range ps {
				from := ""
				if p.From == ledger.StateIntent {
					from = " (had an intent: a bid may exist; resume reconciles first)"
				}
				fmt.Fprintf(e.stdout, "%s\tparked %s\t%q\t%q%s\n", textsafe.Escape(p.Posting), p.Since.UTC().Format(time.RFC3339), p.Rule, p.Reason, from)
			}
			return nil
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&mp, "marketplace", "", "marketplace ID (required)")
	cmd.Flags().StringVar(&state, "state", string(ledger.StateParked), "parked, intent, placed, skipped, failed, dry_run, or none (undecided)")
	cmd.Flags().IntVar(&limit, "limit", 1000, "list at most this many (0: all)")
	return cmd
}

func newLedgerResumeCommand(e env) *cobra.Command {
	var f configFlags
	var mp, posting, rule string
	var all bool
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Bring parked postings back (through reconciliation: never a second bid)",
		Long: `Bring parked postings back. Each gets back what it held before it was parked
(an unresolved intent stays one, so the next attempt asks the marketplace
whether the bid exists before anything is sent) and its bid task is enqueued
again. Resuming twice, or from two places at once, changes nothing more.`,
		Example: `  bidder ledger resume --marketplace sandbox --posting p-000123
  bidder ledger resume --marketplace sandbox --all --reason marketplace_transient
  bidder ledger resume --marketplace sandbox --all`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case mp == "":
				return usageError{errors.New("--marketplace is required")}
			case (posting == "") == !all:
				return usageError{errors.New("give --posting, or --all (optionally with --reason)")}
			case rule != "" && !all:
				return usageError{errors.New("--reason goes with --all")}
			}
			if err := lock.ValidateMarketplaceID(mp); err != nil {
				return usageError{err}
			}
			if posting != "" {
				if err := lock.ValidatePostingID(posting); err != nil {
					return usageError{err}
				}
			}
			cfg, conn, err := opsConn(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer conn.Close()
			led := app.NewLedger(cfg, conn.Client)
			r := ops.NewResumer(conn.Client, led, cfg.Worker.QueuePerMarketplace, scanner.DefaultBidRetention)
			printed := func(id string) { fmt.Fprintf(e.stdout, "resumed %s:%s\n", mp, id) }
			n := 0
			if all {
				n, err = r.ResumeAll(cmd.Context(), mp, rule, printed)
			} else if err = r.Resume(cmd.Context(), mp, posting); err == nil {
				n = 1
				printed(posting)
			}
			if err != nil {
				return fmt.Errorf("ledger resume: %w", escaped{err})
			}
			_, err = fmt.Fprintf(e.stdout, "%d resumed\n", n)
			return err
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&mp, "marketplace", "", "marketplace ID (required)")
	cmd.Flags().StringVar(&posting, "posting", "", "the posting to resume")
	cmd.Flags().BoolVar(&all, "all", false, "every parked posting of the marketplace")
	cmd.Flags().StringVar(&rule, "reason", "", "with --all: only those parked for this reason (as 'ledger list' shows it)")
	return cmd
}
