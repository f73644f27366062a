package main

import (
	"errors"
	"fmt"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/ops"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/scanner"
	"github.com/bidder/bidder/worker/rules"
)

func newReviewCommand(e env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "review",
		Short: "The review queue: postings whose bid waits for a human (list, show, approve, reject)",
		Long: `The review queue: postings the rules sent to a human instead of bidding
(rules.review in the marketplace's config). Approve sends the proposed bid, or
the bid as you edit it (checked against the rules' bounds); reject ends the
posting for good; a posting nobody acts on expires at its deadline. Approving
twice, from two places at once, or after a reject gives one outcome.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("review needs a subcommand: list, show, approve or reject")}
		},
	}
	cmd.AddCommand(newReviewListCommand(e), newReviewShowCommand(e), newReviewApproveCommand(e), newReviewRejectCommand(e))
	return cmd
}

// reviewer connects to Redis and builds the Reviewer from the config (the
// marketplaces' rules check edited bids).
func reviewer(cmd *cobra.Command, f *configFlags, mp string) (ops.Reviewer, func(), error) {
	if err := lock.ValidateMarketplaceID(mp); err != nil {
		return ops.Reviewer{}, nil, usageError{err}
	}
	cfg, conn, err := opsConn(cmd.Context(), f)
	if err != nil {
		return ops.Reviewer{}, nil, err
	}
	engines := map[string]*rules.Engine{}
	for _, m := range cfg.Marketplaces {
		if eng, err := rules.New(m.Rules); err == nil {
			engines[m.ID] = eng
		}
	}
	led := app.NewLedger(cfg, conn.Client)
	r := ops.Reviewer{Resumer: ops.NewResumer(conn.Client, led, cfg.Worker.QueuePerMarketplace, scanner.DefaultBidRetention), Rules: engines}
	return r, func() { _ = conn.Close() }, nil
}

func reviewFlags(cmd *cobra.Command, f *configFlags, mp, posting *string) {
	f.add(cmd, false)
	cmd.Flags().StringVar(mp, "marketplace", "", "marketplace ID (required)")
	if posting != nil {
		cmd.Flags().StringVar(posting, "posting", "", "posting ID (required)")
	}
}

func newReviewListCommand(e env) *cobra.Command {
	var f configFlags
	var mp string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List a marketplace's postings in review, nearest deadline first",
		Example: `  bidder review list --marketplace sandbox`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, done, err := reviewer(cmd, &f, mp)
			if err != nil {
				return err
			}
			defer done()
			items, err := r.Queue(cmd.Context(), mp, 0)
			if err != nil {
				return escaped{err}
			}
			for _, it := range items {
				fmt.Fprintf(e.stdout, "%s\tuntil %s\t%.2f %s\t%q\t%q\n", it.Posting, it.Until.UTC().Format(time.RFC3339), it.Amount, it.Currency, it.Title, it.Reason)
			}
			_, err = fmt.Fprintf(e.stdout, "%d in review\n", len(items))
			return err
		},
	}
	reviewFlags(cmd, &f, &mp, nil)
	return cmd
}

func newReviewShowCommand(e env) *cobra.Command {
	var f configFlags
	var mp, posting string
	cmd := &cobra.Command{
		Use:     "show",
		Short:   "Show one posting's review: the proposed bid, why, until when, and who did what",
		Example: `  bidder review show --marketplace sandbox --posting p-000123`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lock.ValidatePostingID(posting); err != nil {
				return usageError{err}
			}
			r, done, err := reviewer(cmd, &f, mp)
			if err != nil {
				return err
			}
			defer done()
			it, err := r.Show(cmd.Context(), mp, posting)
			if err != nil {
				return escaped{err}
			}
			w := e.stdout
			fmt.Fprintf(w, "posting:  %s\ntitle:    %q\nurl:      %q\n", it.Posting, it.Title, it.URL)
			if it.Until.IsZero() {
				fmt.Fprintln(w, "state:    not in review (see 'bidder ledger get')")
			} else {
				fmt.Fprintf(w, "until:    %s\n", it.Until.UTC().Format(time.RFC3339))
			}
			fmt.Fprintf(w, "amount:   %.2f %s\nreason:   %q\nproposal: %q\n", it.Amount, it.Currency, it.Reason, it.Proposal)
			for _, a := range it.Audit {
				fmt.Fprintf(w, "log:      %s %s by %q %q", a.At.UTC().Format(time.RFC3339), a.Action, a.By, a.Why)
				for k, c := range a.Changes {
					fmt.Fprintf(w, " %s %q -> %q", k, c.From, c.To)
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
	reviewFlags(cmd, &f, &mp, &posting)
	return cmd
}

func newReviewApproveCommand(e env) *cobra.Command {
	var f configFlags
	var mp, posting, proposal, by string
	var amount float64
	cmd := &cobra.Command{
		Use:   "approve",
		Short: "Approve a posting's bid (as proposed, or with another amount or proposal) and send it",
		Example: `  bidder review approve --marketplace sandbox --posting p-000123
  bidder review approve --marketplace sandbox --posting p-000123 --amount 380 --proposal "..."`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lock.ValidatePostingID(posting); err != nil {
				return usageError{err}
			}
			r, done, err := reviewer(cmd, &f, mp)
			if err != nil {
				return err
			}
			defer done()
			already, err := r.Approve(cmd.Context(), mp, posting, reviewerName(by), amount, proposal)
			if err != nil {
				return escaped{err}
			}
			if already {
				_, err = fmt.Fprintf(e.stdout, "%s:%s was approved already; its bid is on its way\n", mp, posting)
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "approved %s:%s; its bid task is enqueued\n", mp, posting)
			return err
		},
	}
	reviewFlags(cmd, &f, &mp, &posting)
	cmd.Flags().Float64Var(&amount, "amount", 0, "bid this amount instead of the proposed one")
	cmd.Flags().StringVar(&proposal, "proposal", "", "send this proposal instead of the proposed one")
	cmd.Flags().StringVar(&by, "by", "", "who approves (default: the OS user), for the log")
	return cmd
}

func newReviewRejectCommand(e env) *cobra.Command {
	var f configFlags
	var mp, posting, why, by string
	cmd := &cobra.Command{
		Use:     "reject",
		Short:   "Reject a posting in review, for good",
		Example: `  bidder review reject --marketplace sandbox --posting p-000123 --reason off-topic`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lock.ValidatePostingID(posting); err != nil {
				return usageError{err}
			}
			if why == "" {
				return usageError{errors.New("--reason is required: the log keeps why")}
			}
			r, done, err := reviewer(cmd, &f, mp)
			if err != nil {
				return err
			}
			defer done()
			already, err := r.Reject(cmd.Context(), mp, posting, reviewerName(by), why)
			if err != nil {
				return escaped{err}
			}
			if already {
				_, err = fmt.Fprintf(e.stdout, "%s:%s was rejected already\n", mp, posting)
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "rejected %s:%s\n", mp, posting)
			return err
		},
	}
	reviewFlags(cmd, &f, &mp, &posting)
	cmd.Flags().StringVar(&why, "reason", "", "why (required)")
	cmd.Flags().StringVar(&by, "by", "", "who rejects (default: the OS user), for the log")
	return cmd
}

func reviewerName(by string) string {
	if by != "" {
		return by
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "cli"
}
