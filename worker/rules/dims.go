package rules

import (
	"strconv"
	"strings"

	"github.com/bidder/bidder/marketplace"
)

// Dims are what a bid is reported by (bidder report): which include
// keyword matched, the posting's budget band, the client's country and the
// amount strategy. Computed from the posting and the config alone, when a
// bid is recorded, so the report needs neither again.
type Dims struct {
	Keyword  string // the first include keyword found (title before description); "" without include keywords
	Band     string // e.g. "fixed 100-500", "hourly 25-50"
	Country  string // the client's country code, upper case; "" when absent or not a code
	Strategy string // e.g. "fixed/percent": budget type and amount strategy
}

// Dims computes a posting's report dimensions.
func (e *Engine) Dims(p marketplace.Posting) Dims {
	d := Dims{Band: band(p.Budget), Country: countryCode(p.Client.Country)}
	rule := e.amountFixed
	if p.Budget.Type == marketplace.BudgetHourly {
		rule = e.amountHourly
	}
	d.Strategy = string(p.Budget.Type) + "/" + string(rule.Strategy)
	if e.include != nil {
		s := e.pool.Get().(*scratch)
		defer e.put(s)
		s.buf, s.title = appendWords(s.buf[:0], s.title[:0], p.Title)
		s.buf, s.desc = appendWords(s.buf, s.desc[:0], p.Description)
		id := e.include.find(s.buf, s.title)
		if id < 0 {
			id = e.include.find(s.buf, s.desc)
		}
		if id >= 0 {
			d.Keyword = e.include.phrases[id].keyword
		}
	}
	return d
}

// Bands, by the top of the posting's budget in its own currency: coarse on
// purpose, a handful of rows in a report.
var (
	fixedBands  = []float64{100, 500, 2000, 10000}
	hourlyBands = []float64{25, 50, 100}
)

func band(b marketplace.Budget) string {
	_, hi := budgetBounds(b)
	edges := fixedBands
	if b.Type == marketplace.BudgetHourly {
		edges = hourlyBands
	}
	lo := "0"
	for _, e := range edges {
		if hi < e {
			return string(b.Type) + " " + lo + "-" + short(e)
		}
		lo = short(e)
	}
	return string(b.Type) + " " + lo + "+"
}

func short(x float64) string {
	switch {
	case x >= 1000 && int(x)%1000 == 0:
		return strconv.Itoa(int(x)/1000) + "k"
	default:
		return strconv.Itoa(int(x))
	}
}

// countryCode keeps a 2- or 3-letter code and drops anything else: the
// value is outside input and becomes a report row.
func countryCode(c string) string {
	c = strings.TrimSpace(c)
	if len(c) < 2 || len(c) > 3 {
		return ""
	}
	for i := 0; i < len(c); i++ {
		if ch := c[i] | 0x20; ch < 'a' || ch > 'z' {
			return ""
		}
	}
	return strings.ToUpper(c)
}

// Encode is the ledger's stored form: four fields joined by '|' (a
// keyword's '|' becomes '/'), in the order of Dims.
func (d Dims) Encode() string {
	return strings.Join([]string{strings.ReplaceAll(d.Keyword, "|", "/"), d.Band, d.Country, d.Strategy}, "|")
}

// ParseDims undoes Encode; anything malformed gives the zero Dims.
func ParseDims(s string) Dims {
	f := strings.Split(s, "|")
	if len(f) != 4 {
		return Dims{}
	}
	return Dims{Keyword: f[0], Band: f[1], Country: f[2], Strategy: f[3]}
}
