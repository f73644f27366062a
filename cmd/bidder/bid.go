package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/ops"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
)

func newBidCommand(e env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bid",
		Short: "One placed bid: its status and outcome history (status), or withdraw it (retract)",
		Long: `One placed bid. status prints what the ledger knows (the decision, the
outcome the tracker or a retract recorded, and its history) and, with --live,
what the marketplace says now. retract withdraws the bid on the marketplace and
records the outcome; the posting stays decided, so the pipeline never bids on
it again.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("bid needs a subcommand: status or retract")}
		},
	}
	cmd.AddCommand(newBidStatusCommand(e), newBidRetractCommand(e))
	return cmd
}

// bidAdapter builds the marketplace's adapter from the config, without
// starting anything else, and for an agency-mode marketplace its accounts'
// adapters (the first is the one returned). An embedded marketplace lives
// inside its 'run' process: the command cannot reach it.
func bidAdapter(f *configFlags, cfg config.Config, mp string) (marketplace.Adapter, []marketplace.Adapter, error) {
	for i, m := range cfg.Marketplaces {
		if m.ID != mp {
			continue
		}
		if m.Embedded {
			return nil, nil, usageError{fmt.Errorf("marketplace %q is embedded: it lives inside its 'bidder run' process; use the status page", mp)}
		}
		reg, err := app.Adapters()
		if err != nil {
			return nil, nil, err
		}
		log, err := f.logger(cfg)
		if err != nil {
			return nil, nil, err
		}
		log = log.With(zap.String("role", "bid"))
		key := fmt.Sprintf("marketplaces[%d]", i)
		if len(m.Accounts) == 0 {
			ad, err := reg.New(m.Adapter, app.AdapterConfig(m, log))
			if err != nil {
				return nil, nil, &config.Error{Key: key, Problem: err.Error(), Err: err}
			}
			return ad, nil, nil
		}
		var ads []marketplace.Adapter
		for j, ac := range m.Accounts {
			ad, err := reg.New(m.Adapter, app.AccountConfig(m, ac, log))
			if err != nil {
				return nil, nil, &config.Error{Key: fmt.Sprintf("%s.accounts[%d]", key, j), Problem: err.Error(), Err: err}
			}
			ads = append(ads, ad)
		}
		return ads[0], ads, nil
	}
	return nil, nil, usageError{fmt.Errorf("--marketplace %q is not in the config", mp)}
}

func bidFlags(cmd *cobra.Command, f *configFlags, mp, posting *string) {
	f.add(cmd, false)
	cmd.Flags().StringVar(mp, "marketplace", "", "marketplace ID (required)")
	cmd.Flags().StringVar(posting, "posting", "", "posting ID (required)")
}

func checkBidFlags(mp, posting string) error {
	if mp == "" || posting == "" {
		return usageError{errors.New("--marketplace and --posting are required")}
	}
	if err := lock.ValidateIDs(mp, posting); err != nil {
		return usageError{err}
	}
	return nil
}

func newBidStatusCommand(e env) *cobra.Command {
	var f configFlags
	var mp, posting string
	var live bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a posting's bid and its outcome history (and, with --live, ask the marketplace)",
		Example: `  bidder bid status --marketplace sandbox --posting p-000123
  bidder bid status --marketplace sandbox --posting p-000123 --live`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkBidFlags(mp, posting); err != nil {
				return err
			}
			cfg, conn, err := opsConn(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer conn.Close()
			led := app.NewLedger(cfg, conn.Client)
			r, err := led.Get(cmd.Context(), mp, posting)
			if err != nil {
				return fmt.Errorf("bid status: %w", escaped{err})
			}
			if r.State != ledger.StatePlaced {
				st := string(r.State)
				if st == "" {
					st = "undecided"
				}
				return escaped{fmt.Errorf("%w: %s:%s is %s (bidder ledger get shows why)", ledger.ErrNotPlaced, mp, posting, st)}
			}
			w := e.stdout
			// Strings come from Redis and the marketplace: printed quoted.
			fmt.Fprintf(w, "bid:      %q\namount:   %.2f %q\nplaced:   %s\noutcome:  %s", r.BidID, r.Amount, r.Currency, r.At.UTC().Format(time.RFC3339), r.Outcome)
			if !r.OutcomeAt.IsZero() {
				fmt.Fprintf(w, " (since %s)", r.OutcomeAt.UTC().Format(time.RFC3339))
			}
			fmt.Fprintln(w)
			if r.Account != "" {
				fmt.Fprintf(w, "account:  %q\n", r.Account)
			}
			log, err := led.Audit(cmd.Context(), mp, posting)
			if err != nil {
				return escaped{err}
			}
			for _, a := range log {
				if a.Action != "outcome" {
					continue
				}
				fmt.Fprintf(w, "  %s  %-9s by %q", a.At.UTC().Format(time.RFC3339), a.Outcome, a.By)
				if a.Why != "" {
					fmt.Fprintf(w, ": %q", a.Why)
				}
				fmt.Fprintln(w)
			}
			if !live {
				return nil
			}
			ad, accounts, err := bidAdapter(&f, cfg, mp)
			if err != nil {
				return err
			}
			for _, a := range accounts {
				if a.Account() == r.Account {
					ad = a // the account that placed it
				}
			}
			sr, ok := ad.(marketplace.StatusReader)
			if !ok {
				return escaped{fmt.Errorf("--live: marketplace %q's adapter cannot read bid statuses", mp)}
			}
			st, err := sr.BidStatuses(cmd.Context(), []marketplace.PlacedBid{{ID: r.BidID, PostingID: posting}})
			if err != nil {
				return fmt.Errorf("bid status --live: %w", escaped{err})
			}
			fmt.Fprintf(w, "live:     %s %q\n", st[0].Outcome, st[0].Text)
			return nil
		},
	}
	bidFlags(cmd, &f, &mp, &posting)
	cmd.Flags().BoolVar(&live, "live", false, "also ask the marketplace now")
	return cmd
}

func newBidRetractCommand(e env) *cobra.Command {
	var f configFlags
	var mp, posting, why, by string
	cmd := &cobra.Command{
		Use:   "retract",
		Short: "Withdraw a placed bid on the marketplace and record it; the posting stays decided",
		Long: `Withdraw a placed bid: the marketplace first (tried again while its answer
leaves open whether it happened: a retract is safe to repeat), then the ledger
records the outcome "retracted" with who and why. The posting stays decided, so
the pipeline never bids on it again. A bid the client already decided cannot be
retracted (exit 1, "too late").`,
		Example: `  bidder bid retract --marketplace sandbox --posting p-000123 --reason "client went quiet"`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkBidFlags(mp, posting); err != nil {
				return err
			}
			cfg, conn, err := opsConn(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer conn.Close()
			ad, accounts, err := bidAdapter(&f, cfg, mp)
			if err != nil {
				return err
			}
			r := ops.Retracter{Ledger: app.NewLedger(cfg, conn.Client), Adapters: map[string]marketplace.Adapter{mp: ad},
				Accounts: map[string][]marketplace.Adapter{mp: accounts}}
			got, err := r.Retract(cmd.Context(), mp, posting, reviewerName(by), why)
			if err != nil {
				return fmt.Errorf("bid retract: %w", escaped{err})
			}
			if got.Already {
				_, err = fmt.Fprintf(e.stdout, "bid %q on %s:%s was retracted already\n", got.BidID, mp, posting)
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "retracted bid %q on %s:%s\n", got.BidID, mp, posting)
			return err
		},
	}
	bidFlags(cmd, &f, &mp, &posting)
	cmd.Flags().StringVar(&why, "reason", "", "why, for the outcome history")
	cmd.Flags().StringVar(&by, "by", "", "who retracts (default: the OS user), for the history")
	return cmd
}
