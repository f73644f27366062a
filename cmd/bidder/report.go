package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/history"
	"github.com/bidder/bidder/internal/report"
	"github.com/bidder/bidder/lock"
)

func newReportCommand(e env) *cobra.Command {
	var f configFlags
	var mp, since, format string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "What came back from the bids: funnel, outcomes, win rate and time to award, by rule dimension",
		Long: `Report on the bids placed in a window: per marketplace the funnel (decided,
matched, sent, replied, hired), bids by outcome (pending, awarded, rejected,
retracted, no answer), the win rate (awarded out of awarded, rejected and no
answer) and the median time to award, overall and per dimension: the include
keyword that matched, the budget band, the client's country, the amount
strategy. Outcomes come from the tracker (tracker.* in the config); see
docs/outcomes.md.`,
		Example: `  bidder report --config configs/single.yaml --since 7d
  bidder report --since 24h --marketplace sandbox --format csv > bids.csv`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := parseSince(since)
			if err != nil {
				return usageError{fmt.Errorf("--since: %w", err)}
			}
			if !slices.Contains(report.Formats, format) {
				return usageError{fmt.Errorf("--format %q: want one of %s", format, strings.Join(report.Formats, ", "))}
			}
			if mp != "" {
				if err := lock.ValidateMarketplaceID(mp); err != nil {
					return usageError{err}
				}
			}
			cfg, conn, err := opsConn(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer conn.Close()
			var mps []string
			for _, m := range cfg.Marketplaces {
				if mp == "" || m.ID == mp {
					mps = append(mps, m.ID)
				}
			}
			if len(mps) == 0 {
				return usageError{fmt.Errorf("--marketplace %q is not in the config", mp)}
			}
			until := time.Now()
			rep, err := report.Build(cmd.Context(), app.NewLedger(cfg, conn.Client), history.NewReader(conn.Client), mps, until.Add(-d), until)
			if err != nil {
				return escaped{err}
			}
			return rep.Write(e.stdout, format)
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&mp, "marketplace", "", "only this marketplace (default: every one in the config)")
	cmd.Flags().StringVar(&since, "since", "7d", "how far back: bids placed since then (e.g. 24h, 7d, 30d)")
	cmd.Flags().StringVar(&format, "format", "table", "table, csv or json")
	return cmd
}

// parseSince reads "7d" as well as Go durations ("36h", "90m").
func parseSince(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("%q: want a number of days (7d) or a duration (36h)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want a number of days (7d) or a duration (36h)", s)
		}
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}
