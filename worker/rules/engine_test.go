package rules

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
)

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// goodPosting passes minimalConfig; each case changes one thing.
func goodPosting() marketplace.Posting {
	return marketplace.Posting{
		MarketplaceID: "sandbox",
		ID:            "p-1",
		Title:         "Python data report",
		Description:   "Weekly report from our sales data.",
		Budget:        marketplace.Budget{Type: marketplace.BudgetFixed, Min: 200, Max: 500, Currency: "USD"},
		Skills:        []string{"Python", "SQL"},
		PostedAt:      testNow.Add(-time.Hour),
		Client:        marketplace.Client{Rating: 4.5, TotalSpend: 1000, Country: "DE"},
		Status:        marketplace.StatusOpen,
	}
}

func mustNew(t testing.TB, c Config) *Engine {
	t.Helper()
	e, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

type ruleCase struct {
	name       string
	cfg        func(*Config)
	post       func(*marketplace.Posting)
	wantRule   string // RuleOK means bid
	wantReason string // substring, optional
}

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := minimalConfig()
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			p := goodPosting()
			if tc.post != nil {
				tc.post(&p)
			}
			d := mustNew(t, c).Decide(p, testNow)
			if d.Rule != tc.wantRule || d.Bid != (tc.wantRule == RuleOK) {
				t.Fatalf("got rule %q bid %v (%s), want rule %q", d.Rule, d.Bid, d.Reason, tc.wantRule)
			}
			if !strings.Contains(d.Reason, tc.wantReason) {
				t.Fatalf("reason %q, want it to contain %q", d.Reason, tc.wantReason)
			}
			if d.Bid && (d.Amount <= 0 || d.Proposal == "" || d.Currency != p.Budget.Currency) {
				t.Fatalf("bid decision incomplete: %+v", d)
			}
			if !d.Bid && (d.Amount != 0 || d.Proposal != "") {
				t.Fatalf("skip decision carries bid data: %+v", d)
			}
		})
	}
}

func TestDecideStatusAgeCurrency(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "open passes", wantRule: RuleOK},
		{name: "closed", post: func(p *marketplace.Posting) { p.Status = marketplace.StatusClosed },
			wantRule: RuleStatus, wantReason: `"closed" is not open`},
		{name: "unknown status", post: func(p *marketplace.Posting) { p.Status = "" }, wantRule: RuleStatus},
		{name: "age equal to max", cfg: func(c *Config) { c.MaxAge = Duration(time.Hour) }, wantRule: RuleOK},
		{name: "age just over max", cfg: func(c *Config) { c.MaxAge = Duration(time.Hour) },
			post:     func(p *marketplace.Posting) { p.PostedAt = testNow.Add(-time.Hour - time.Nanosecond) },
			wantRule: RuleMaxAge, wantReason: "older than max_age 1h0m0s"},
		{name: "no max age", post: func(p *marketplace.Posting) { p.PostedAt = testNow.AddDate(-1, 0, 0) }, wantRule: RuleOK},
		{name: "missing posted_at with max age", cfg: func(c *Config) { c.MaxAge = Duration(time.Hour) },
			post: func(p *marketplace.Posting) { p.PostedAt = time.Time{} }, wantRule: RuleMaxAge, wantReason: "no posted_at"},
		{name: "posted in the future (clock skew)", cfg: func(c *Config) { c.MaxAge = Duration(time.Hour) },
			post: func(p *marketplace.Posting) { p.PostedAt = testNow.Add(time.Minute) }, wantRule: RuleOK},
		{name: "currency allowed case-insensitively", cfg: func(c *Config) { c.Budget.Currencies = []string{"eur", "usd"} }, wantRule: RuleOK},
		{name: "currency not allowed", cfg: func(c *Config) { c.Budget.Currencies = []string{"EUR"} },
			wantRule: RuleCurrency, wantReason: `currency "USD" not in [EUR]`},
		{name: "missing currency with allow list", cfg: func(c *Config) { c.Budget.Currencies = []string{"USD"} },
			post: func(p *marketplace.Posting) { p.Budget.Currency = "" }, wantRule: RuleCurrency},
	})
}

func TestDecideBudgetRange(t *testing.T) {
	fixed := func(min, max float64) func(*Config) {
		return func(c *Config) { c.Budget.Fixed = Range{Min: min, Max: max} }
	}
	budget := func(min, max float64) func(*marketplace.Posting) {
		return func(p *marketplace.Posting) { p.Budget.Min, p.Budget.Max = min, max }
	}
	runRuleCases(t, []ruleCase{
		// Posting budget is 200..500.
		{name: "max equal to min", cfg: fixed(500, 0), wantRule: RuleOK},
		{name: "max just under min", cfg: fixed(500.01, 0), wantRule: RuleBudgetRange, wantReason: "fixed budget up to 500 USD is below min 500.01"},
		{name: "min equal to max", cfg: fixed(0, 200), wantRule: RuleOK},
		{name: "min just over max", cfg: fixed(0, 199.99), wantRule: RuleBudgetRange, wantReason: "fixed budget from 200 USD is above max 199.99"},
		{name: "overlap", cfg: fixed(300, 400), wantRule: RuleOK},
		{name: "zero range is no limit", cfg: fixed(0, 0), post: budget(1e9, 2e9), wantRule: RuleOK},
		{name: "no max read as min..min", cfg: fixed(300, 0), post: budget(250, 0), wantRule: RuleBudgetRange},
		{name: "unknown budget with min set", cfg: fixed(1, 0), post: budget(0, 0), wantRule: RuleBudgetRange},
		{name: "hourly uses hourly range", cfg: func(c *Config) { c.Budget.Fixed = Range{Min: 1000}; c.Budget.Hourly = Range{Min: 30, Max: 60} },
			post: func(p *marketplace.Posting) {
				p.Budget = marketplace.Budget{Type: marketplace.BudgetHourly, Min: 40, Max: 50, Currency: "USD"}
			},
			wantRule: RuleOK},
		{name: "hourly below hourly min", cfg: func(c *Config) { c.Budget.Hourly = Range{Min: 30} },
			post: func(p *marketplace.Posting) {
				p.Budget = marketplace.Budget{Type: marketplace.BudgetHourly, Min: 10, Max: 29, Currency: "USD"}
			},
			wantRule: RuleBudgetRange, wantReason: "hourly budget up to 29"},
		{name: "unknown type", post: func(p *marketplace.Posting) { p.Budget.Type = "milestone" }, wantRule: RuleBudgetRange, wantReason: `unknown budget type "milestone"`},
		{name: "negative budget", post: budget(-1, 100), wantRule: RuleBudgetRange, wantReason: "invalid budget"},
		{name: "NaN budget", post: budget(0, math.NaN()), wantRule: RuleBudgetRange, wantReason: "invalid budget"},
		{name: "infinite budget", post: budget(0, math.Inf(1)), wantRule: RuleBudgetRange, wantReason: "invalid budget"},
		{name: "min over max", post: budget(600, 500), wantRule: RuleBudgetRange, wantReason: "invalid budget"},
	})
}

func TestDecideClientAndCountry(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{name: "rating equal to min", cfg: func(c *Config) { c.Client.MinRating = 4.5 }, wantRule: RuleOK},
		{name: "rating just under min", cfg: func(c *Config) { c.Client.MinRating = 4.51 }, wantRule: RuleClientRating, wantReason: "below min 4.51"},
		{name: "unrated client fails a min", cfg: func(c *Config) { c.Client.MinRating = 1 },
			post: func(p *marketplace.Posting) { p.Client.Rating = 0 }, wantRule: RuleClientRating},
		{name: "unrated client passes no min", post: func(p *marketplace.Posting) { p.Client.Rating = 0 }, wantRule: RuleOK},
		{name: "NaN rating fails a min", cfg: func(c *Config) { c.Client.MinRating = 1 },
			post: func(p *marketplace.Posting) { p.Client.Rating = math.NaN() }, wantRule: RuleClientRating},
		{name: "spend equal to min", cfg: func(c *Config) { c.Client.MinTotalSpend = 1000 }, wantRule: RuleOK},
		{name: "spend just under min", cfg: func(c *Config) { c.Client.MinTotalSpend = 1000.01 }, wantRule: RuleClientSpend},
		{name: "country allowed, case-insensitive", cfg: func(c *Config) { c.Client.AllowCountries = []string{"us", "de"} },
			post: func(p *marketplace.Posting) { p.Client.Country = " De " }, wantRule: RuleOK},
		{name: "country not allowed", cfg: func(c *Config) { c.Client.AllowCountries = []string{"US"} },
			wantRule: RuleCountry, wantReason: `client country "DE" not in allow list [US]`},
		{name: "no country with allow list", cfg: func(c *Config) { c.Client.AllowCountries = []string{"US"} },
			post: func(p *marketplace.Posting) { p.Client.Country = "" }, wantRule: RuleCountry},
		{name: "country denied", cfg: func(c *Config) { c.Client.DenyCountries = []string{"de"} },
			wantRule: RuleCountry, wantReason: `"DE" is in deny list`},
		{name: "no country with deny list", cfg: func(c *Config) { c.Client.DenyCountries = []string{"DE"} },
			post: func(p *marketplace.Posting) { p.Client.Country = "" }, wantRule: RuleOK},
	})
}

func TestDecideSkillsAndKeywords(t *testing.T) {
	kw := func(include, exclude []string) func(*Config) {
		return func(c *Config) { c.Keywords = KeywordConfig{Include: include, Exclude: exclude} }
	}
	text := func(title, desc string) func(*marketplace.Posting) {
		return func(p *marketplace.Posting) { p.Title, p.Description = title, desc }
	}
	runRuleCases(t, []ruleCase{
		{name: "required all present, any case", cfg: func(c *Config) { c.Skills.Required = []string{"python", "sql"} }, wantRule: RuleOK},
		{name: "required one missing", cfg: func(c *Config) { c.Skills.Required = []string{"python", "go"} },
			wantRule: RuleSkills, wantReason: `required skill "go" missing`},
		{name: "any of one present", cfg: func(c *Config) { c.Skills.AnyOf = []string{"go", " SQL "} }, wantRule: RuleOK},
		{name: "any of none present", cfg: func(c *Config) { c.Skills.AnyOf = []string{"go", "rust"} }, wantRule: RuleSkills},
		{name: "no skills on posting", cfg: func(c *Config) { c.Skills.AnyOf = []string{"go"} },
			post: func(p *marketplace.Posting) { p.Skills = nil }, wantRule: RuleSkills},

		{name: "exclude phrase in title", cfg: kw(nil, []string{"video call"}), post: text("Video call assistant", "x"),
			wantRule: RuleExcludeKeyword, wantReason: `exclude keyword "video call" in title`},
		{name: "exclude in description", cfg: kw(nil, []string{"in-person"}), post: text("Data job", "Meet in person weekly"),
			wantRule: RuleExcludeKeyword, wantReason: `exclude keyword "in-person" in description`},
		{name: "exclude live does not hit deliver", cfg: kw(nil, []string{"live"}), post: text("Deliver a report", "We deliver data"),
			wantRule: RuleOK},
		{name: "phrase does not span title and description", cfg: kw(nil, []string{"video call"}), post: text("Need video", "call me"),
			wantRule: RuleOK},
		{name: "exclude wins over include", cfg: kw([]string{"python"}, []string{"live"}), post: text("Python", "live coding"),
			wantRule: RuleExcludeKeyword},
		{name: "include in description", cfg: kw([]string{"report"}, nil), post: text("Job", "A Report, weekly"), wantRule: RuleOK},
		{name: "include missing", cfg: kw([]string{"python"}, nil), post: text("Python3 job", "pythonic"),
			wantRule: RuleIncludeKeyword, wantReason: "no include keyword"},
	})
}

func TestAmountStrategies(t *testing.T) {
	hourly := marketplace.Budget{Type: marketplace.BudgetHourly, Min: 20, Max: 40, Currency: "EUR"}
	for _, tc := range []struct {
		name   string
		rule   AmountRule
		budget marketplace.Budget
		want   float64
	}{
		{"fixed", AmountRule{Strategy: StrategyFixed, Amount: 123.456}, goodPosting().Budget, 123.46},
		{"percent of max", AmountRule{Strategy: StrategyPercent, Percent: 90}, goodPosting().Budget, 450},
		{"percent of min when no max", AmountRule{Strategy: StrategyPercent, Percent: 50}, marketplace.Budget{Type: "fixed", Min: 300}, 150},
		{"percent of hourly max", AmountRule{Strategy: StrategyPercent, Percent: 95}, hourly, 38},
		{"percent rounds to cents", AmountRule{Strategy: StrategyPercent, Percent: 33.333}, marketplace.Budget{Type: "fixed", Max: 100}, 33.33},
		{"percent rounds half up", AmountRule{Strategy: StrategyPercent, Percent: 12.5}, marketplace.Budget{Type: "fixed", Max: 1}, 0.13},
		{"range point 0 is min", AmountRule{Strategy: StrategyRangePoint, Point: 0}, hourly, 20},
		{"range point 1 is max", AmountRule{Strategy: StrategyRangePoint, Point: 1}, hourly, 40},
		{"range point 0.75", AmountRule{Strategy: StrategyRangePoint, Point: 0.75}, hourly, 35},
		{"range point without max", AmountRule{Strategy: StrategyRangePoint, Point: 0.5}, marketplace.Budget{Type: "fixed", Min: 80}, 80},
		{"clamped up to min_amount", AmountRule{Strategy: StrategyPercent, Percent: 10, MinAmount: 75}, goodPosting().Budget, 75},
		{"equal to min_amount stays", AmountRule{Strategy: StrategyPercent, Percent: 15, MinAmount: 75}, goodPosting().Budget, 75},
		{"clamped down to max_amount", AmountRule{Strategy: StrategyPercent, Percent: 100, MaxAmount: 499.99}, goodPosting().Budget, 499.99},
		{"equal to max_amount stays", AmountRule{Strategy: StrategyPercent, Percent: 100, MaxAmount: 500}, goodPosting().Budget, 500},
		{"zero budget gives zero", AmountRule{Strategy: StrategyPercent, Percent: 90}, marketplace.Budget{Type: "fixed"}, 0},
		{"sub-cent rounds to zero", AmountRule{Strategy: StrategyPercent, Percent: 0.1}, marketplace.Budget{Type: "fixed", Max: 4}, 0},
		{"min_amount rescues a zero", AmountRule{Strategy: StrategyPercent, Percent: 0.1, MinAmount: 5}, marketplace.Budget{Type: "fixed", Max: 4}, 5},
	} {
		if got := computeAmount(tc.rule, tc.budget); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDecideNeverBidsZero(t *testing.T) {
	c := minimalConfig()
	c.Amount.Fixed = AmountRule{Strategy: StrategyPercent, Percent: 0.1}
	e := mustNew(t, c)
	for _, b := range []marketplace.Budget{
		{Type: marketplace.BudgetFixed, Currency: "USD"},         // no budget at all
		{Type: marketplace.BudgetFixed, Max: 4, Currency: "USD"}, // 0.004 rounds to 0
	} {
		p := goodPosting()
		p.Budget = b
		d := e.Decide(p, testNow)
		if d.Bid || d.Rule != RuleAmount || !strings.Contains(d.Reason, "not positive") {
			t.Errorf("budget %+v: got %+v, want a skip by rule amount", b, d)
		}
	}

	// A budget type without an amount rule is skipped, not bid with the
	// other type's amount.
	c = minimalConfig()
	c.Amount.Hourly = AmountRule{}
	p := goodPosting()
	p.Budget = marketplace.Budget{Type: marketplace.BudgetHourly, Min: 20, Max: 40, Currency: "USD"}
	d := mustNew(t, c).Decide(p, testNow)
	if d.Bid || d.Rule != RuleAmount || d.Reason != "no amount rule for hourly postings" {
		t.Fatalf("got %+v", d)
	}
}

func TestDecideBidUsesAmountRuleOfBudgetType(t *testing.T) {
	e := mustNew(t, minimalConfig())
	p := goodPosting()
	if d := e.Decide(p, testNow); !d.Bid || d.Amount != 100 || d.Currency != "USD" {
		t.Fatalf("fixed posting: %+v", d)
	}
	p.Budget = marketplace.Budget{Type: marketplace.BudgetHourly, Min: 20, Max: 40, Currency: "EUR"}
	if d := e.Decide(p, testNow); !d.Bid || d.Amount != 40 || d.Currency != "EUR" {
		t.Fatalf("hourly posting: %+v", d)
	}
}

func TestProposalTemplate(t *testing.T) {
	c := minimalConfig()
	c.Proposal.Template = `{{.Title}}|{{.Budget.Max}}|{{.Budget.Currency}}|{{.Client.Country}}|{{money .Amount}}|{{join "," .Skills}}|{{truncate 6 .Description}}|{{upper .ID}}`
	d := mustNew(t, c).Decide(goodPosting(), testNow)
	want := "Python data report|500|USD|DE|100.00|Python,SQL|Weekly|P-1"
	if !d.Bid || d.Proposal != want {
		t.Fatalf("proposal %q (%+v), want %q", d.Proposal, d, want)
	}
}

func TestProposalErrorsAreSkipsNotPanics(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl string
		maxBytes   int
		post       func(*marketplace.Posting)
		wantReason string
	}{
		// The sample posting has a skill, so this passes load and fails
		// only on postings without one.
		{name: "index out of range on this posting", tmpl: `Main skill: {{index .Skills 0}}`,
			post: func(p *marketplace.Posting) { p.Skills = nil }, wantReason: "index out of range"},
		{name: "over max bytes", tmpl: `{{.Description}}`, maxBytes: 20,
			post:       func(p *marketplace.Posting) { p.Description = strings.Repeat("x", 21) },
			wantReason: "proposal exceeds max_bytes (20)"},
		{name: "empty after rendering", tmpl: `{{.Description}}`,
			post: func(p *marketplace.Posting) { p.Description = "  " }, wantReason: "empty proposal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := minimalConfig()
			c.Proposal = ProposalConfig{Template: tc.tmpl, MaxBytes: tc.maxBytes}
			e := mustNew(t, c)
			p := goodPosting()
			tc.post(&p)
			d := e.Decide(p, testNow)
			if d.Bid || d.Rule != RuleProposal || !strings.Contains(d.Reason, tc.wantReason) {
				t.Fatalf("got %+v, want a proposal skip containing %q", d, tc.wantReason)
			}
		})
	}

	// Exactly max_bytes is allowed; invalid UTF-8 from a posting is dropped.
	c := minimalConfig()
	c.Proposal = ProposalConfig{Template: `{{.Description}}`, MaxBytes: 20}
	p := goodPosting()
	p.Description = strings.Repeat("y", 19) + "\xff"
	d := mustNew(t, c).Decide(p, testNow)
	if !d.Bid || d.Proposal != strings.Repeat("y", 19) {
		t.Fatalf("got %+v", d)
	}
}

func TestDecideIsSafeForConcurrentUse(t *testing.T) {
	c := minimalConfig()
	c.Keywords.Exclude = []string{"video call"}
	c.Proposal.Template = "{{.Title}} for {{money .Amount}}"
	e := mustNew(t, c)
	done := make(chan Decision)
	for i := 0; i < 8; i++ {
		go func(i int) {
			p := goodPosting()
			if i%2 == 1 {
				p.Description = "weekly video call"
			}
			var d Decision
			for j := 0; j < 200; j++ {
				d = e.Decide(p, testNow)
			}
			done <- d
		}(i)
	}
	bids := 0
	for i := 0; i < 8; i++ {
		d := <-done
		if d.Bid {
			bids++
			if d.Proposal != "Python data report for 100.00" {
				t.Errorf("proposal mixed up between goroutines: %q", d.Proposal)
			}
		} else if d.Rule != RuleExcludeKeyword {
			t.Errorf("unexpected skip %+v", d)
		}
	}
	if bids != 4 {
		t.Fatalf("%d bids, want 4", bids)
	}
}

func benchEngine(b *testing.B) (*Engine, marketplace.Posting) {
	c := Config{
		Budget: BudgetConfig{Currencies: []string{"USD", "EUR"}, Fixed: Range{Min: 100, Max: 5000}, Hourly: Range{Min: 25, Max: 150}},
		Keywords: KeywordConfig{
			Include: []string{"python", "data", "report", "data pipeline", "etl", "pandas"},
			Exclude: []string{"video call", "in-person", "on-site", "live", "unpaid", "test task"},
		},
		Skills:   SkillsConfig{AnyOf: []string{"python", "go", "sql"}},
		MaxAge:   Duration(48 * time.Hour),
		Client:   ClientConfig{MinRating: 4, MinTotalSpend: 500, DenyCountries: []string{"KP"}},
		Amount:   AmountConfig{Fixed: AmountRule{Strategy: StrategyPercent, Percent: 90, MinAmount: 80, MaxAmount: 4500}},
		Proposal: ProposalConfig{Template: "Hello,\n\nI read \"{{.Title}}\" and can do it for {{money .Amount}} {{.Budget.Currency}}.\n\nBest regards"},
	}
	e := mustNew(b, c)
	p := goodPosting()
	// A realistic posting: ~1.5 KB of description, the include keyword
	// near the end so the whole text is scanned.
	p.Description = strings.Repeat("We are a small company looking for someone to help us with our weekly numbers. ", 18) +
		"The output is a report."
	return e, p
}

func BenchmarkDecide(b *testing.B) {
	e, p := benchEngine(b)
	b.Run("bid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d := e.Decide(p, testNow); !d.Bid {
				b.Fatalf("not a bid: %+v", d)
			}
		}
	})
	b.Run("skip_exclude_keyword", func(b *testing.B) {
		q := p
		q.Description += " Expect a video call."
		b.ReportAllocs()
		for b.Loop() {
			if d := e.Decide(q, testNow); d.Rule != RuleExcludeKeyword {
				b.Fatalf("not an exclude skip: %+v", d)
			}
		}
	})
	b.Run("skip_include_keyword", func(b *testing.B) {
		q := p
		q.Title, q.Description = "Logo design", strings.Repeat("Make our brand look great. ", 50)
		b.ReportAllocs()
		for b.Loop() {
			if d := e.Decide(q, testNow); d.Rule != RuleIncludeKeyword {
				b.Fatalf("not an include skip: %+v", d)
			}
		}
	})
	b.Run("skip_closed", func(b *testing.B) {
		q := p
		q.Status = marketplace.StatusClosed
		b.ReportAllocs()
		for b.Loop() {
			if d := e.Decide(q, testNow); d.Rule != RuleStatus {
				b.Fatalf("not a status skip: %+v", d)
			}
		}
	})
}
