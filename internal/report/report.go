// Package report turns the ledger's bids and the history's counts into
// what users tune their rules on: per marketplace the funnel (decided,
// matched, sent, replied, hired), outcomes and win rate, time to award,
// and the same per report dimension (include keyword matched, budget band,
// client country, amount strategy, and in agency mode the account). It reads; it never writes.
//
// It may import ledger, internal/history and worker/rules (for the
// dimensions' stored form).
package report

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bidder/bidder/internal/history"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/worker/rules"
)

// Counts are bids by outcome.
type Counts struct {
	Bids      int `json:"bids"`
	Pending   int `json:"pending"`
	Awarded   int `json:"awarded"`
	Rejected  int `json:"rejected"`
	Retracted int `json:"retracted"`
	NoAnswer  int `json:"no_answer"`

	toAward []time.Duration
}

// Answered is the bids the win rate is out of: awarded, rejected, or no
// answer by the horizon. Pending bids have no outcome yet; retracted ones
// were withdrawn by us.
func (c Counts) Answered() int { return c.Awarded + c.Rejected + c.NoAnswer }

// WinRate is Awarded over Answered, or -1 when nothing is answered.
func (c Counts) WinRate() float64 {
	if c.Answered() == 0 {
		return -1
	}
	return float64(c.Awarded) / float64(c.Answered())
}

// MedianToAward is the median time from bid to award (0 without awards).
func (c Counts) MedianToAward() time.Duration {
	if len(c.toAward) == 0 {
		return 0
	}
	s := slices.Clone(c.toAward)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (c *Counts) add(r ledger.PlacedRow) {
	c.Bids++
	switch r.Outcome {
	case ledger.BidAwarded:
		c.Awarded++
		if !r.OutcomeAt.IsZero() && r.OutcomeAt.After(r.PlacedAt) {
			c.toAward = append(c.toAward, r.OutcomeAt.Sub(r.PlacedAt))
		}
	case ledger.BidRejected:
		c.Rejected++
	case ledger.BidRetracted:
		c.Retracted++
	case ledger.BidNoAnswer:
		c.NoAnswer++
	default:
		c.Pending++
	}
}

// Funnel is a marketplace's postings from decision to hire. Decided and
// Matched come from the history's counts (exact unless a process died
// within a flush interval; by whole UTC days beyond 48 hours); Sent,
// Replied and Hired from the ledger's bids.
type Funnel struct {
	Decided int64 `json:"decided"` // postings decided for good (placed, skipped, dry run, failed)
	Matched int64 `json:"matched"` // of those, the rules would bid on
	Sent    int64 `json:"sent"`    // bids placed
	Replied int64 `json:"replied"` // awarded or rejected
	Hired   int64 `json:"hired"`   // awarded
}

// Group is one value of one dimension.
type Group struct {
	Dimension string `json:"dimension"` // keyword, band, country, strategy, account
	Value     string `json:"value"`     // "" is shown as "(none)"
	Counts
}

// Market is one marketplace's report.
type Market struct {
	ID     string  `json:"marketplace"`
	Funnel Funnel  `json:"funnel"`
	Total  Counts  `json:"total"`
	Groups []Group `json:"groups"`
}

// Report covers bids placed in [Since, Until).
type Report struct {
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	Markets []Market  `json:"marketplaces"`
}

// Dimensions, in report order. account (the account that bid) is only
// reported for agency-mode marketplaces, whose bids name one.
var Dimensions = []string{"keyword", "band", "country", "strategy", "account"}

// Build reads the report of marketplaces over [since, until).
func Build(ctx context.Context, led *ledger.Ledger, hist *history.Reader, marketplaces []string, since, until time.Time) (Report, error) {
	rep := Report{Since: since, Until: until}
	for _, mp := range marketplaces {
		rows, err := led.Bids(ctx, mp, since, until)
		if err != nil {
			return Report{}, fmt.Errorf("report: %w", err)
		}
		m := Market{ID: mp}
		groups := map[[2]string]*Group{}
		for _, r := range rows {
			m.Total.add(r)
			d := rules.ParseDims(r.Dims)
			for i, v := range []string{d.Keyword, d.Band, d.Country, d.Strategy, r.Account} {
				if Dimensions[i] == "account" && r.Account == "" {
					continue
				}
				k := [2]string{Dimensions[i], v}
				g := groups[k]
				if g == nil {
					g = &Group{Dimension: k[0], Value: k[1]}
					groups[k] = g
				}
				g.add(r)
			}
		}
		for _, g := range groups {
			m.Groups = append(m.Groups, *g)
		}
		slices.SortFunc(m.Groups, func(a, b Group) int {
			if c := slices.Index(Dimensions, a.Dimension) - slices.Index(Dimensions, b.Dimension); c != 0 {
				return c
			}
			if a.Bids != b.Bids {
				return b.Bids - a.Bids
			}
			return strings.Compare(a.Value, b.Value)
		})
		if hist != nil {
			sums, err := hist.Sum(ctx, mp, since, until)
			if err != nil {
				return Report{}, fmt.Errorf("report: %w", err)
			}
			m.Funnel.Decided, m.Funnel.Matched = funnelOf(sums)
		}
		m.Funnel.Sent = int64(m.Total.Bids)
		m.Funnel.Replied = int64(m.Total.Awarded + m.Total.Rejected)
		m.Funnel.Hired = int64(m.Total.Awarded)
		rep.Markets = append(rep.Markets, m)
	}
	return rep, nil
}

// funnelOf reads the history's metrics of final decisions: "placed",
// "dry_run", "skipped:<rule>", "failed:<class>". A posting sent to review
// counts once its bid is placed (approved); rejected and expired reviews
// are in bidder review's log, not here.
func funnelOf(sums map[string]int64) (decided, matched int64) {
	for k, n := range sums {
		base, _, _ := strings.Cut(k, ":")
		switch base {
		case "placed", "dry_run", "failed":
			decided += n
			matched += n
		case "skipped":
			decided += n
		}
	}
	return decided, matched
}
