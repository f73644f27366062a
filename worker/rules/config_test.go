package rules

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// minimalConfig is the smallest valid Config: no limits, a fixed amount for
// both budget types and a plain proposal.
func minimalConfig() Config {
	return Config{
		Amount: AmountConfig{
			Fixed:  AmountRule{Strategy: StrategyFixed, Amount: 100},
			Hourly: AmountRule{Strategy: StrategyFixed, Amount: 40},
		},
		Proposal: ProposalConfig{Template: "Hello, about {{.Title}}."},
	}
}

func decodeStrict(t *testing.T, src string) (Config, error) {
	t.Helper()
	var doc struct {
		Rules Config `yaml:"rules"`
	}
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	err := dec.Decode(&doc)
	return doc.Rules, err
}

// The example in docs/rules.md is what operators copy; it must decode with
// no unknown keys, validate, and mean what the doc says.
func TestDocsExampleDecodesAndValidates(t *testing.T) {
	md, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(md)
	if m == nil {
		t.Fatal("docs/rules.md has no ```yaml block")
	}
	cfg, err := decodeStrict(t, string(m[1]))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if time.Duration(cfg.MaxAge) != 48*time.Hour {
		t.Errorf("max_age = %v, want 48h", time.Duration(cfg.MaxAge))
	}
	if cfg.Budget.Fixed != (Range{Min: 100, Max: 5000}) || cfg.BidBudget != (BidBudgetConfig{PerHour: 10, PerDay: 60, PerWeek: 300}) {
		t.Errorf("budget decoded wrong: %+v %+v", cfg.Budget.Fixed, cfg.BidBudget)
	}
	if cfg.Amount.Hourly.Strategy != StrategyRangePoint || cfg.Amount.Hourly.Point != 0.75 {
		t.Errorf("amount.hourly decoded wrong: %+v", cfg.Amount.Hourly)
	}
	if _, err := New(cfg); err != nil {
		t.Fatalf("New: %v", err)
	}
}

func TestDurationYAML(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: `max_age: 48h`, want: 48 * time.Hour},
		{in: `max_age: 90m`, want: 90 * time.Minute},
		{in: `max_age: 0`, want: 0},
		{in: `max_age: ""`, want: 0},
		{in: `max_age: 2d`, wantErr: `invalid duration "2d"`},
		{in: `max_age: 172800`, wantErr: `invalid duration "172800"`}, // a bare number is ambiguous
		{in: `max_age: [1]`, wantErr: "want a duration"},
	} {
		var c Config
		err := yaml.Unmarshal([]byte(tc.in), &c)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || time.Duration(c.MaxAge) != tc.want {
			t.Errorf("%s: got %v, %v; want %v", tc.in, time.Duration(c.MaxAge), err, tc.want)
		}
	}

	// Round trip: a marshalled Config decodes to the same durations.
	c := minimalConfig()
	c.MaxAge = Duration(36 * time.Hour)
	var buf bytes.Buffer
	if err := yaml.NewEncoder(&buf).Encode(c); err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := yaml.Unmarshal(buf.Bytes(), &back); err != nil || back.MaxAge != c.MaxAge {
		t.Fatalf("round trip: %v, %v\n%s", time.Duration(back.MaxAge), err, buf.String())
	}
}

func TestValidateNamesKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // exact FieldError text expected among the errors
	}{
		{"fixed min > max", func(c *Config) { c.Budget.Fixed = Range{Min: 10, Max: 5} },
			"rules.budget.fixed.min: must be <= max (5), got 10"},
		{"hourly negative", func(c *Config) { c.Budget.Hourly.Max = -1 },
			"rules.budget.hourly.max: must be >= 0, got -1"},
		{"currency code", func(c *Config) { c.Budget.Currencies = []string{"USD", "dollars"} },
			`rules.budget.currencies[1]: must be a 3-letter ISO 4217 code, got "dollars"`},
		{"empty keyword", func(c *Config) { c.Keywords.Exclude = []string{"ok", " - "} },
			`rules.keywords.exclude[1]: must contain a letter or digit, got " - "`},
		{"empty include", func(c *Config) { c.Keywords.Include = []string{""} },
			`rules.keywords.include[0]: must contain a letter or digit, got ""`},
		{"empty skill", func(c *Config) { c.Skills.AnyOf = []string{" "} },
			"rules.skills.any_of[0]: must not be empty"},
		{"negative age", func(c *Config) { c.MaxAge = Duration(-time.Hour) },
			"rules.max_age: must be >= 0, got -1h0m0s"},
		{"negative rating", func(c *Config) { c.Client.MinRating = -0.5 },
			"rules.client.min_rating: must be >= 0, got -0.5"},
		{"country code", func(c *Config) { c.Client.AllowCountries = []string{"Germany"} },
			`rules.client.allow_countries[0]: must be a 2-letter ISO 3166-1 code, got "Germany"`},
		{"country both", func(c *Config) {
			c.Client.AllowCountries = []string{"de"}
			c.Client.DenyCountries = []string{"DE"}
		}, `rules.client.deny_countries[0]: "DE" is also in allow_countries`},
		{"per hour negative", func(c *Config) { c.BidBudget.PerHour = -1 },
			"rules.bid_budget.per_hour: must be >= 0 (0 = unlimited), got -1"},
		{"per hour > per day", func(c *Config) { c.BidBudget = BidBudgetConfig{PerHour: 20, PerDay: 10} },
			"rules.bid_budget.per_hour: must be <= per_day (10), got 20"},
		{"no amount", func(c *Config) { c.Amount = AmountConfig{} },
			"rules.amount: set amount.fixed and/or amount.hourly, or nothing can ever be bid"},
		{"unknown strategy", func(c *Config) { c.Amount.Fixed.Strategy = "max" },
			`rules.amount.fixed.strategy: unknown strategy "max": want fixed, percent or range_point`},
		{"missing strategy", func(c *Config) { c.Amount.Hourly = AmountRule{Amount: 5} },
			"rules.amount.hourly.strategy: required when amount.hourly is set: one of fixed, percent, range_point"},
		{"zero fixed amount", func(c *Config) { c.Amount.Fixed = AmountRule{Strategy: StrategyFixed} },
			"rules.amount.fixed.amount: must be > 0 with strategy fixed"},
		{"percent over 100", func(c *Config) { c.Amount.Fixed = AmountRule{Strategy: StrategyPercent, Percent: 101} },
			"rules.amount.fixed.percent: must be in (0, 100] with strategy percent, got 101"},
		{"point over 1", func(c *Config) { c.Amount.Hourly = AmountRule{Strategy: StrategyRangePoint, Point: 1.5} },
			"rules.amount.hourly.point: must be in [0, 1] with strategy range_point, got 1.5"},
		{"clamp inverted", func(c *Config) {
			c.Amount.Fixed = AmountRule{Strategy: StrategyFixed, Amount: 5, MinAmount: 10, MaxAmount: 8}
		}, "rules.amount.fixed.min_amount: must be <= max_amount (8), got 10"},
		{"no template", func(c *Config) { c.Proposal.Template = "  " },
			"rules.proposal.template: required: marketplaces reject bids without a proposal"},
		{"negative max bytes", func(c *Config) { c.Proposal.MaxBytes = -1 },
			"rules.proposal.max_bytes: must be >= 0 (0 = 5000), got -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := minimalConfig()
			tc.mod(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted a bad config")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error does not match ErrInvalidConfig: %v", err)
			}
			if !containsLine(err.Error(), tc.want) {
				t.Errorf("errors:\n%v\nwant a line:\n%s", err, tc.want)
			}
			if _, nerr := New(c); nerr == nil || !errors.Is(nerr, ErrInvalidConfig) {
				t.Errorf("New accepted it or lost ErrInvalidConfig: %v", nerr)
			}
		})
	}
}

func TestValidateTemplateErrors(t *testing.T) {
	for _, tc := range []struct{ tmpl, want string }{
		{"Hi {{.Title", "rules.proposal.template: does not parse"},
		{"Hi {{.Titel}}", "rules.proposal.template: fails on a sample posting"},
		{"Hi {{nosuchfunc .Title}}", `function "nosuchfunc" not defined`},
		{"{{if false}}x{{end}}", "empty proposal"},
	} {
		c := minimalConfig()
		c.Proposal.Template = tc.tmpl
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to contain %q", tc.tmpl, err, tc.want)
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Key != "rules.proposal.template" {
			t.Errorf("%q: want a FieldError for rules.proposal.template, got %#v", tc.tmpl, fe)
		}
	}
}

func TestValidateCollectsAll(t *testing.T) {
	c := minimalConfig()
	c.Budget.Fixed = Range{Min: 10, Max: 5}
	c.BidBudget.PerDay = -3
	err := c.Validate()
	for _, key := range []string{"rules.budget.fixed.min:", "rules.bid_budget.per_day:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("want %s among %v", key, err)
		}
	}
	if err := minimalConfig().Validate(); err != nil {
		t.Fatalf("minimal config invalid: %v", err)
	}
}

func containsLine(s, line string) bool {
	for _, l := range strings.Split(s, "\n") {
		if l == line {
			return true
		}
	}
	return false
}
