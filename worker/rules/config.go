package rules

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bidder/bidder/marketplace"
)

// Config is the should-bid policy of one marketplace. It is meant to sit under
// a `rules:` key of that marketplace's config, which is why Validate names
// keys from "rules.". The zero value of every limit means "no limit".
type Config struct {
	Budget    BudgetConfig    `yaml:"budget"`
	Keywords  KeywordConfig   `yaml:"keywords"`
	Skills    SkillsConfig    `yaml:"skills"`
	MaxAge    Duration        `yaml:"max_age"`
	Client    ClientConfig    `yaml:"client"`
	BidBudget BidBudgetConfig `yaml:"bid_budget"`
	Amount    AmountConfig    `yaml:"amount"`
	Proposal  ProposalConfig  `yaml:"proposal"`
	Review    ReviewConfig    `yaml:"review"`
	DryRun    bool            `yaml:"dry_run"`
}

// BudgetConfig bounds the posting's own budget, in the posting's currency.
// Ranges are per budget type because a fixed price and an hourly rate are
// different quantities: one range for both would always be wrong for one.
type BudgetConfig struct {
	// Currencies, if set, is the allow list of ISO 4217 codes. Amounts are
	// never converted: every number in this config is read in the posting's
	// currency, so a marketplace with mixed currencies should list them.
	Currencies []string `yaml:"currencies"`
	Fixed      Range    `yaml:"fixed"`
	Hourly     Range    `yaml:"hourly"`
}

// Range is an inclusive [Min, Max]; 0 on either side means unbounded.
type Range struct {
	Min float64 `yaml:"min"`
	Max float64 `yaml:"max"`
}

// KeywordConfig lists words and phrases matched on word boundaries (see the
// package doc for the exact semantics).
type KeywordConfig struct {
	Include []string `yaml:"include"` // at least one must match, if any are set
	Exclude []string `yaml:"exclude"` // none may match
}

// SkillsConfig is matched against the posting's skill tags, case-insensitively.
type SkillsConfig struct {
	Required []string `yaml:"required"` // all of them
	AnyOf    []string `yaml:"any_of"`   // at least one, if set
}

// ClientConfig filters on what the marketplace says about the client.
type ClientConfig struct {
	// MinRating: a client with no rating yet (0) fails any positive minimum.
	MinRating     float64 `yaml:"min_rating"`
	MinTotalSpend float64 `yaml:"min_total_spend"`
	// Countries are ISO 3166-1 alpha-2 codes, case-insensitive. A client
	// with no country fails a non-empty allow list and passes a deny list.
	AllowCountries []string `yaml:"allow_countries"`
	DenyCountries  []string `yaml:"deny_countries"`
}

// BidBudgetConfig caps how many bids all instances together place on this
// marketplace per UTC hour and UTC day (0 = unlimited). It is enforced by
// Budget, not by Engine.Decide, because it needs shared state.
type BidBudgetConfig struct {
	PerHour int `yaml:"per_hour"`
	PerDay  int `yaml:"per_day"`
	PerWeek int `yaml:"per_week"` // Monday 00:00 UTC to the next
	// PerMonth: the 1st 00:00 UTC to the next; a marketplace's own monthly
	// bid quota (Freelancer plans grant bids monthly).
	PerMonth int `yaml:"per_month"`
}

// AmountConfig holds one amount rule per budget type: a fixed amount that is
// right for a project is absurd as an hourly rate and vice versa. Postings of
// a type whose rule is unset are skipped (rule "amount").
type AmountConfig struct {
	Fixed  AmountRule `yaml:"fixed"`
	Hourly AmountRule `yaml:"hourly"`
}

// Strategy says how a bid amount is derived from the posting's budget.
type Strategy string

const (
	// StrategyFixed bids AmountRule.Amount whatever the posting's budget.
	StrategyFixed Strategy = "fixed"
	// StrategyPercent bids AmountRule.Percent of the budget's max (of its min
	// when the posting gives no max). The max is used for hourly postings
	// too: it is the rate the client said it would pay, and the clamp below
	// keeps the result within what we charge.
	StrategyPercent Strategy = "percent"
	// StrategyRangePoint bids min + Point*(max-min) of the posting's budget.
	StrategyRangePoint Strategy = "range_point"
)

// AmountRule computes a bid amount. The result is rounded to cents and then
// clamped to [MinAmount, MaxAmount] (0 = unbounded); a result <= 0 skips the
// posting instead of bidding nothing (the seed bid 0 through a unit bug).
type AmountRule struct {
	Strategy  Strategy `yaml:"strategy"`
	Amount    float64  `yaml:"amount"`  // StrategyFixed
	Percent   float64  `yaml:"percent"` // StrategyPercent, in (0, 100]
	Point     float64  `yaml:"point"`   // StrategyRangePoint, in [0, 1]
	MinAmount float64  `yaml:"min_amount"`
	MaxAmount float64  `yaml:"max_amount"`
}

func (r AmountRule) isSet() bool { return r != AmountRule{} }

// DefaultProposalMaxBytes caps a proposal when ProposalConfig.MaxBytes is 0.
const DefaultProposalMaxBytes = 5000

// ProposalConfig is the proposal text as a Go text/template over
// ProposalData (so {{.Title}}, {{.Budget.Max}}, {{.Client.Country}},
// {{.Amount}} work).
type ProposalConfig struct {
	Template string `yaml:"template"`
	// MaxBytes caps the rendered proposal; a longer one skips the posting
	// (rule "proposal") rather than sending a cut-off text.
	MaxBytes int `yaml:"max_bytes"`
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("48h", "90m"), because yaml.v3 would otherwise read a bare number as
// nanoseconds and reject "48h".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as \"48h\"", n.Line)
	}
	if n.Value == "" || n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q: want e.g. \"48h\" or \"90m\"", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler so that a Config round-trips.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ErrInvalidConfig is matched (errors.Is) by every error Validate and New
// return for a bad Config.
var ErrInvalidConfig = errors.New("invalid rules config")

// FieldError is one problem with one config key.
type FieldError struct {
	Key     string // full key path, e.g. "rules.budget.fixed.min"
	Problem string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Problem }

// Is makes every FieldError match ErrInvalidConfig.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidConfig }

// Validate reports every problem in c, each as a *FieldError naming its key;
// the result is an errors.Join of them, nil when c is usable.
func (c Config) Validate() error {
	v := &validator{}
	c.validate(v)
	c.Review.validate(v)
	return v.err()
}

type validator struct{ errs []error }

func (v *validator) addf(key, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Key: "rules." + key, Problem: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error { return errors.Join(v.errs...) }

// nonNegative reports a problem unless x is a finite number >= 0.
func (v *validator) nonNegative(key string, x float64) bool {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		v.addf(key, "must be a finite number, got %v", x)
		return false
	}
	if x < 0 {
		v.addf(key, "must be >= 0, got %v", x)
		return false
	}
	return true
}

func (v *validator) rng(key string, r Range) {
	okMin := v.nonNegative(key+".min", r.Min)
	okMax := v.nonNegative(key+".max", r.Max)
	if okMin && okMax && r.Max > 0 && r.Min > r.Max {
		v.addf(key+".min", "must be <= max (%v), got %v", r.Max, r.Min)
	}
}

func (c Config) validate(v *validator) {
	for i, cur := range c.Budget.Currencies {
		if !isAlpha(strings.TrimSpace(cur), 3) {
			v.addf(fmt.Sprintf("budget.currencies[%d]", i), "must be a 3-letter ISO 4217 code, got %q", cur)
		}
	}
	v.rng("budget.fixed", c.Budget.Fixed)
	v.rng("budget.hourly", c.Budget.Hourly)

	for _, kw := range []struct {
		key  string
		list []string
	}{{"keywords.include", c.Keywords.Include}, {"keywords.exclude", c.Keywords.Exclude}} {
		for i, k := range kw.list {
			if len(keywordWords(k)) == 0 {
				v.addf(fmt.Sprintf("%s[%d]", kw.key, i), "must contain a letter or digit, got %q", k)
			}
		}
	}
	for _, sk := range []struct {
		key  string
		list []string
	}{{"skills.required", c.Skills.Required}, {"skills.any_of", c.Skills.AnyOf}} {
		for i, s := range sk.list {
			if strings.TrimSpace(s) == "" {
				v.addf(fmt.Sprintf("%s[%d]", sk.key, i), "must not be empty")
			}
		}
	}

	if c.MaxAge < 0 {
		v.addf("max_age", "must be >= 0, got %s", time.Duration(c.MaxAge))
	}
	v.nonNegative("client.min_rating", c.Client.MinRating)
	v.nonNegative("client.min_total_spend", c.Client.MinTotalSpend)
	for _, cl := range []struct {
		key  string
		list []string
	}{{"client.allow_countries", c.Client.AllowCountries}, {"client.deny_countries", c.Client.DenyCountries}} {
		for i, cc := range cl.list {
			if !isAlpha(strings.TrimSpace(cc), 2) {
				v.addf(fmt.Sprintf("%s[%d]", cl.key, i), "must be a 2-letter ISO 3166-1 code, got %q", cc)
			}
		}
	}
	for i, d := range c.Client.DenyCountries {
		if containsFoldTrimmed(c.Client.AllowCountries, d) {
			v.addf(fmt.Sprintf("client.deny_countries[%d]", i), "%q is also in allow_countries", d)
		}
	}

	if c.BidBudget.PerHour < 0 {
		v.addf("bid_budget.per_hour", "must be >= 0 (0 = unlimited), got %d", c.BidBudget.PerHour)
	}
	if c.BidBudget.PerDay < 0 {
		v.addf("bid_budget.per_day", "must be >= 0 (0 = unlimited), got %d", c.BidBudget.PerDay)
	}
	if c.BidBudget.PerWeek < 0 {
		v.addf("bid_budget.per_week", "must be >= 0 (0 = unlimited), got %d", c.BidBudget.PerWeek)
	}
	if c.BidBudget.PerMonth < 0 {
		v.addf("bid_budget.per_month", "must be >= 0 (0 = unlimited), got %d", c.BidBudget.PerMonth)
	}
	if c.BidBudget.PerDay > 0 && c.BidBudget.PerHour > c.BidBudget.PerDay {
		v.addf("bid_budget.per_hour", "must be <= per_day (%d), got %d", c.BidBudget.PerDay, c.BidBudget.PerHour)
	}

	if !c.Amount.Fixed.isSet() && !c.Amount.Hourly.isSet() {
		v.addf("amount", "set amount.fixed and/or amount.hourly, or nothing can ever be bid")
	}
	c.Amount.Fixed.validate(v, "amount.fixed")
	c.Amount.Hourly.validate(v, "amount.hourly")

	if c.Proposal.MaxBytes < 0 {
		v.addf("proposal.max_bytes", "must be >= 0 (0 = %d), got %d", DefaultProposalMaxBytes, c.Proposal.MaxBytes)
	}
	if strings.TrimSpace(c.Proposal.Template) == "" {
		v.addf("proposal.template", "required: marketplaces reject bids without a proposal")
	} else if _, err := compileProposal(c.Proposal); err != nil {
		v.addf("proposal.template", "%v", err)
	}
}

func (r AmountRule) validate(v *validator, key string) {
	if !r.isSet() {
		return
	}
	switch r.Strategy {
	case StrategyFixed:
		if v.nonNegative(key+".amount", r.Amount) && r.Amount == 0 {
			v.addf(key+".amount", "must be > 0 with strategy fixed")
		}
	case StrategyPercent:
		if math.IsNaN(r.Percent) || r.Percent <= 0 || r.Percent > 100 {
			v.addf(key+".percent", "must be in (0, 100] with strategy percent, got %v", r.Percent)
		}
	case StrategyRangePoint:
		if math.IsNaN(r.Point) || r.Point < 0 || r.Point > 1 {
			v.addf(key+".point", "must be in [0, 1] with strategy range_point, got %v", r.Point)
		}
	case "":
		v.addf(key+".strategy", "required when %s is set: one of fixed, percent, range_point", key)
	default:
		v.addf(key+".strategy", "unknown strategy %q: want fixed, percent or range_point", r.Strategy)
	}
	okMin := v.nonNegative(key+".min_amount", r.MinAmount)
	okMax := v.nonNegative(key+".max_amount", r.MaxAmount)
	if okMin && okMax && r.MaxAmount > 0 && r.MinAmount > r.MaxAmount {
		v.addf(key+".min_amount", "must be <= max_amount (%v), got %v", r.MaxAmount, r.MinAmount)
	}
}

func isAlpha(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // ASCII lower-case
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// rangeFor returns the configured range for a known budget type.
func (c BudgetConfig) rangeFor(t marketplace.BudgetType) (Range, bool) {
	switch t {
	case marketplace.BudgetFixed:
		return c.Fixed, true
	case marketplace.BudgetHourly:
		return c.Hourly, true
	}
	return Range{}, false
}
