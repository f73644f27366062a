package rules

import (
	"testing"

	"github.com/bidder/bidder/marketplace"
)

func TestDims(t *testing.T) {
	c := minimalConfig()
	c.Keywords.Include = []string{"sales data", "report"}
	e := mustNew(t, c)
	p := goodPosting() // "Python data report", fixed 200..500 USD (bands are [lo, hi)), DE
	d := e.Dims(p)
	// Title first: "report" is in the title, "sales data" only in the description.
	if d.Keyword != "report" || d.Band != "fixed 500-2k" || d.Country != "DE" || d.Strategy != "fixed/"+string(c.Amount.Fixed.Strategy) {
		t.Fatalf("dims %+v", d)
	}
	if got := ParseDims(d.Encode()); got != d {
		t.Fatalf("round trip %+v -> %q -> %+v", d, d.Encode(), got)
	}
	for _, tc := range []struct {
		b    marketplace.Budget
		want string
	}{
		{marketplace.Budget{Type: marketplace.BudgetFixed, Min: 10, Max: 99}, "fixed 0-100"},
		{marketplace.Budget{Type: marketplace.BudgetFixed, Min: 600}, "fixed 500-2k"},
		{marketplace.Budget{Type: marketplace.BudgetFixed, Min: 10, Max: 25000}, "fixed 10k+"},
		{marketplace.Budget{Type: marketplace.BudgetHourly, Min: 20, Max: 40}, "hourly 25-50"},
		{marketplace.Budget{Type: marketplace.BudgetHourly, Min: 200}, "hourly 100+"},
	} {
		if got := band(tc.b); got != tc.want {
			t.Errorf("band(%+v) = %q, want %q", tc.b, got, tc.want)
		}
	}
	// Outside input never becomes a free-form row.
	for in, want := range map[string]string{"us": "US", " gb ": "GB", "<script>": "", "Deutschland": "", "": "", "D1": ""} {
		if got := countryCode(in); got != want {
			t.Errorf("countryCode(%q) = %q, want %q", in, got, want)
		}
	}
	if ParseDims("a|b") != (Dims{}) {
		t.Fatal("a malformed value parsed")
	}
	if d := mustNew(t, minimalConfig()).Dims(p); d.Keyword != "" {
		t.Fatalf("a keyword without include keywords: %+v", d)
	}
}
