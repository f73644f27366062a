package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/bidder/bidder/internal/textsafe"
)

// Formats WriteTo knows.
var Formats = []string{"table", "csv", "json"}

// Write writes the report in format (one of Formats).
func (r Report) Write(w io.Writer, format string) error {
	switch format {
	case "table":
		return r.writeTable(w)
	case "csv":
		return r.writeCSV(w)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r.jsonView())
	}
	return fmt.Errorf("report: unknown format %q (want table, csv or json)", format)
}

func rate(c Counts) string {
	if c.WinRate() < 0 {
		return "-"
	}
	return strconv.FormatFloat(100*c.WinRate(), 'f', 1, 64) + "%"
}

func toAward(c Counts) string {
	if d := c.MedianToAward(); d > 0 {
		return d.Round(time.Minute).String()
	}
	return "-"
}

// value prints a group's value: outside input (a country, a keyword from
// config) is made safe for a terminal.
func value(v string) string {
	if v == "" {
		return "(none)"
	}
	return textsafe.Line(v, 80)
}

func (r Report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "bids placed %s .. %s (UTC)\n", r.Since.UTC().Format(time.DateTime), r.Until.UTC().Format(time.DateTime))
	for _, m := range r.Markets {
		f := m.Funnel
		fmt.Fprintf(tw, "\n%s\tdecided %d\tmatched %d\tsent %d\treplied %d\thired %d\n", m.ID, f.Decided, f.Matched, f.Sent, f.Replied, f.Hired)
		fmt.Fprintln(tw, "dimension\tvalue\tbids\tpending\tawarded\trejected\tretracted\tno answer\twin rate\tmedian to award")
		row := func(dim, val string, c Counts) {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", dim, val, c.Bids, c.Pending, c.Awarded, c.Rejected, c.Retracted, c.NoAnswer, rate(c), toAward(c))
		}
		row("all", "", m.Total)
		for _, g := range m.Groups {
			row(g.Dimension, value(g.Value), g.Counts)
		}
	}
	return tw.Flush()
}

func (r Report) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"marketplace", "dimension", "value", "bids", "pending", "awarded", "rejected", "retracted", "no_answer", "win_rate", "median_to_award_s"})
	for _, m := range r.Markets {
		row := func(dim, val string, c Counts) {
			wr := ""
			if c.WinRate() >= 0 {
				wr = strconv.FormatFloat(c.WinRate(), 'f', 4, 64)
			}
			ta := ""
			if d := c.MedianToAward(); d > 0 {
				ta = strconv.FormatInt(int64(d.Seconds()), 10)
			}
			_ = cw.Write([]string{m.ID, dim, csvSafe(val), itoa(c.Bids), itoa(c.Pending), itoa(c.Awarded), itoa(c.Rejected), itoa(c.Retracted), itoa(c.NoAnswer), wr, ta})
		}
		row("all", "", m.Total)
		for _, g := range m.Groups {
			row(g.Dimension, g.Value, g.Counts)
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a spreadsheet from running a value as a formula.
func csvSafe(v string) string {
	v = textsafe.Line(v, 80)
	if v != "" && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@') {
		return "'" + v
	}
	return v
}

func itoa(n int) string { return strconv.Itoa(n) }

type jsonCounts struct {
	Counts
	WinRate       *float64 `json:"win_rate"`
	MedianToAward *float64 `json:"median_to_award_seconds"`
}

func jc(c Counts) jsonCounts {
	out := jsonCounts{Counts: c}
	if r := c.WinRate(); r >= 0 {
		out.WinRate = &r
	}
	if d := c.MedianToAward(); d > 0 {
		s := d.Seconds()
		out.MedianToAward = &s
	}
	return out
}

func (r Report) jsonView() any {
	type group struct {
		Dimension string `json:"dimension"`
		Value     string `json:"value"`
		jsonCounts
	}
	type market struct {
		ID     string     `json:"marketplace"`
		Funnel Funnel     `json:"funnel"`
		Total  jsonCounts `json:"total"`
		Groups []group    `json:"groups"`
	}
	out := struct {
		Since   time.Time `json:"since"`
		Until   time.Time `json:"until"`
		Markets []market  `json:"marketplaces"`
	}{Since: r.Since.UTC(), Until: r.Until.UTC(), Markets: []market{}}
	for _, m := range r.Markets {
		mm := market{ID: m.ID, Funnel: m.Funnel, Total: jc(m.Total), Groups: []group{}}
		for _, g := range m.Groups {
			mm.Groups = append(mm.Groups, group{Dimension: g.Dimension, Value: g.Value, jsonCounts: jc(g.Counts)})
		}
		out.Markets = append(out.Markets, mm)
	}
	return out
}
