package rules

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// Rule names, as they appear in Decision.Rule (and make good metric labels:
// the set is fixed and small).
const (
	RuleStatus         = "status"
	RuleMaxAge         = "max_age"
	RuleCurrency       = "currency"
	RuleBudgetRange    = "budget_range"
	RuleClientRating   = "client_rating"
	RuleClientSpend    = "client_spend"
	RuleCountry        = "country"
	RuleSkills         = "skills"
	RuleExcludeKeyword = "exclude_keyword"
	RuleIncludeKeyword = "include_keyword"
	RuleAmount         = "amount"
	RuleProposal       = "proposal"
	RuleOK             = "ok"
)

// Decision is the outcome of Engine.Decide. When Bid is false, Rule names the
// first rule that failed and Reason says why; when it is true, Rule is
// RuleOK and Amount, Currency and Proposal are what to send.
type Decision struct {
	Bid bool
	// Review: a bid that a human must approve first (Rule RuleReview,
	// Reason says which criterion); Amount, Currency and Proposal are the
	// bid proposed.
	Review   bool
	Rule     string
	Reason   string
	Amount   float64
	Currency string
	Proposal string
}

// Engine applies one marketplace's Config to postings. It is immutable after
// New and safe for concurrent use.
type Engine struct {
	dryRun         bool
	maxAge         time.Duration
	currencies     []string
	budget         BudgetConfig
	minRating      float64
	minSpend       float64
	allowCountries []string
	denyCountries  []string
	required       []string
	anyOf          []string
	exclude        *matcher
	include        *matcher
	amountFixed    AmountRule
	amountHourly   AmountRule
	proposal       *proposal
	review         ReviewConfig
	reviewWords    *matcher

	// scratch buffers for cutting up text and rendering proposals, so that
	// Decide does not allocate them per posting.
	pool sync.Pool
}

type scratch struct {
	buf   []byte
	title []span
	desc  []span
	out   capWriter
}

// maxPooledBytes keeps one huge posting from pinning a huge buffer forever.
const maxPooledBytes = 64 << 10

// New validates cfg and precompiles its matchers and template.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	prop, err := compileProposal(cfg.Proposal)
	if err != nil { // unreachable after Validate; kept so New never returns a half-built Engine
		return nil, fmt.Errorf("rules: %w", &FieldError{Key: "rules.proposal.template", Problem: err.Error()})
	}
	e := &Engine{
		dryRun:         cfg.DryRun,
		maxAge:         time.Duration(cfg.MaxAge),
		currencies:     trimAll(cfg.Budget.Currencies),
		budget:         cfg.Budget,
		minRating:      cfg.Client.MinRating,
		minSpend:       cfg.Client.MinTotalSpend,
		allowCountries: trimAll(cfg.Client.AllowCountries),
		denyCountries:  trimAll(cfg.Client.DenyCountries),
		required:       trimAll(cfg.Skills.Required),
		anyOf:          trimAll(cfg.Skills.AnyOf),
		exclude:        newMatcher(cfg.Keywords.Exclude),
		include:        newMatcher(cfg.Keywords.Include),
		amountFixed:    cfg.Amount.Fixed,
		amountHourly:   cfg.Amount.Hourly,
		proposal:       prop,
		review:         cfg.Review,
		reviewWords:    newMatcher(cfg.Review.Keywords),
	}
	e.pool.New = func() any { return new(scratch) }
	return e, nil
}

// DryRun reports whether the config asks to decide without placing bids.
func (e *Engine) DryRun() bool { return e.dryRun }

func trimAll(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.TrimSpace(s)
	}
	return out
}

func skip(rule, format string, args ...any) Decision {
	return Decision{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// Decide runs the rules in the order of the package doc; the first failure
// decides. It depends only on p, now and the config.
func (e *Engine) Decide(p marketplace.Posting, now time.Time) Decision {
	if p.Status != marketplace.StatusOpen {
		// Anything but an explicit "open" is skipped: bidding on a posting
		// in an unknown state is the failure that costs money.
		return skip(RuleStatus, "posting status %q is not open", p.Status)
	}
	if e.maxAge > 0 {
		if p.PostedAt.IsZero() {
			return skip(RuleMaxAge, "posting has no posted_at, cannot check max_age %s", e.maxAge)
		}
		if age := now.Sub(p.PostedAt); age > e.maxAge {
			return skip(RuleMaxAge, "posted %s ago, older than max_age %s", age.Truncate(time.Second), e.maxAge)
		}
	}
	b := p.Budget
	if len(e.currencies) > 0 && !containsFoldTrimmed(e.currencies, b.Currency) {
		return skip(RuleCurrency, "currency %q not in %v", b.Currency, e.currencies)
	}
	if d, ok := e.checkBudget(b); !ok {
		return d
	}
	if !(p.Client.Rating >= e.minRating) { // negated so that NaN fails
		return skip(RuleClientRating, "client rating %v below min %v", p.Client.Rating, e.minRating)
	}
	if !(p.Client.TotalSpend >= e.minSpend) {
		return skip(RuleClientSpend, "client total spend %v below min %v", p.Client.TotalSpend, e.minSpend)
	}
	country := strings.TrimSpace(p.Client.Country)
	if len(e.allowCountries) > 0 && !containsFoldTrimmed(e.allowCountries, country) {
		return skip(RuleCountry, "client country %q not in allow list %v", country, e.allowCountries)
	}
	if country != "" && containsFoldTrimmed(e.denyCountries, country) {
		return skip(RuleCountry, "client country %q is in deny list", country)
	}
	for _, want := range e.required {
		if !containsFoldTrimmed(p.Skills, want) {
			return skip(RuleSkills, "required skill %q missing", want)
		}
	}
	if len(e.anyOf) > 0 && !anyFold(p.Skills, e.anyOf) {
		return skip(RuleSkills, "none of the skills %v", e.anyOf)
	}

	// Everything from here on needs scratch space; the cheap rules above
	// decide most postings without it.
	s := e.pool.Get().(*scratch)
	defer e.put(s)
	if e.exclude != nil || e.include != nil {
		if d, ok := e.checkKeywords(s, p); !ok {
			return d
		}
	}

	rule := e.amountFixed
	if b.Type == marketplace.BudgetHourly {
		rule = e.amountHourly
	}
	if !rule.isSet() {
		return skip(RuleAmount, "no amount rule for %s postings", b.Type)
	}
	amount := computeAmount(rule, b)
	if !(amount > 0) {
		return skip(RuleAmount, "amount %.2f %s is not positive (strategy %s)", amount, b.Currency, rule.Strategy)
	}

	text, err := e.proposal.render(s, NewProposalData(p, amount))
	if err != nil {
		return skip(RuleProposal, "proposal: %v", err)
	}
	d := Decision{Bid: true, Rule: RuleOK, Reason: "all rules passed", Amount: amount, Currency: b.Currency, Proposal: text}
	if e.review.enabled() {
		if why := e.reviewReason(s, p, d); why != "" {
			d.Review, d.Rule, d.Reason = true, RuleReview, why
		}
	}
	return d
}

func (e *Engine) put(s *scratch) {
	if cap(s.buf) > maxPooledBytes || s.out.buf.Cap() > maxPooledBytes {
		return
	}
	e.pool.Put(s)
}

// checkBudget rejects malformed budgets whatever the config (a bid amount
// computed from a negative or NaN budget is meaningless) and then requires
// the posting's [min, max] to overlap the configured range: some amount the
// client would pay must be one we accept. A posting with no max is read as
// [min, min].
func (e *Engine) checkBudget(b marketplace.Budget) (Decision, bool) {
	if !finiteNonNeg(b.Min) || !finiteNonNeg(b.Max) || (b.Max > 0 && b.Min > b.Max) {
		return skip(RuleBudgetRange, "invalid budget min %v max %v", b.Min, b.Max), false
	}
	r, known := e.budget.rangeFor(b.Type)
	if !known {
		return skip(RuleBudgetRange, "unknown budget type %q", b.Type), false
	}
	lo, hi := budgetBounds(b)
	if r.Min > 0 && hi < r.Min {
		return skip(RuleBudgetRange, "%s budget up to %v %s is below min %v", b.Type, hi, b.Currency, r.Min), false
	}
	if r.Max > 0 && lo > r.Max {
		return skip(RuleBudgetRange, "%s budget from %v %s is above max %v", b.Type, lo, b.Currency, r.Max), false
	}
	return Decision{}, true
}

func budgetBounds(b marketplace.Budget) (lo, hi float64) {
	lo, hi = b.Min, b.Max
	if hi == 0 {
		hi = lo
	}
	return lo, hi
}

func finiteNonNeg(x float64) bool { return x >= 0 && !math.IsInf(x, 1) }

// computeAmount applies the strategy, rounds to cents, then clamps. The
// clamp bounds are config values, so clamping last cannot un-round them
// beyond what the operator wrote.
func computeAmount(r AmountRule, b marketplace.Budget) float64 {
	lo, hi := budgetBounds(b)
	var x float64
	switch r.Strategy {
	case StrategyFixed:
		x = r.Amount
	case StrategyPercent:
		x = hi * r.Percent / 100
	case StrategyRangePoint:
		x = lo + r.Point*(hi-lo)
	default:
		return 0
	}
	x = roundCents(x)
	if r.MinAmount > 0 && x < r.MinAmount {
		x = r.MinAmount
	}
	if r.MaxAmount > 0 && x > r.MaxAmount {
		x = r.MaxAmount
	}
	return roundCents(x)
}

// roundCents rounds half away from zero on the binary value, so 0.125 gives
// 0.13 but 1.005 (stored as 1.00499...) gives 1.
func roundCents(x float64) float64 { return math.Round(x*100) / 100 }

func (e *Engine) checkKeywords(s *scratch, p marketplace.Posting) (Decision, bool) {
	s.buf, s.title = appendWords(s.buf[:0], s.title[:0], p.Title)
	s.buf, s.desc = appendWords(s.buf, s.desc[:0], p.Description)
	if e.exclude != nil {
		if id := e.exclude.find(s.buf, s.title); id >= 0 {
			return skip(RuleExcludeKeyword, "exclude keyword %q in title", e.exclude.phrases[id].keyword), false
		}
		if id := e.exclude.find(s.buf, s.desc); id >= 0 {
			return skip(RuleExcludeKeyword, "exclude keyword %q in description", e.exclude.phrases[id].keyword), false
		}
	}
	if e.include != nil && e.include.find(s.buf, s.title) < 0 && e.include.find(s.buf, s.desc) < 0 {
		return skip(RuleIncludeKeyword, "no include keyword in title or description"), false
	}
	return Decision{}, true
}

func containsFoldTrimmed(list []string, s string) bool {
	s = strings.TrimSpace(s)
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}

func anyFold(have, want []string) bool {
	for _, w := range want {
		if containsFoldTrimmed(have, w) {
			return true
		}
	}
	return false
}
