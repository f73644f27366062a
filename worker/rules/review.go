package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/bidder/bidder/marketplace"
)

// RuleReview is the Decision.Rule of a posting sent to review.
const RuleReview = "review"

// DefaultReviewDeadline is how long a reviewer has when review.deadline is
// unset.
const DefaultReviewDeadline = 24 * time.Hour

// ReviewConfig sends postings to a human before their bid, instead of
// bidding: any criterion that matches sends it. A posting in review waits
// until it is approved (optionally with another amount and proposal),
// rejected, or its deadline passes.
type ReviewConfig struct {
	All              bool     `yaml:"all"`                // every bid (a new marketplace's first days)
	AmountAbove      float64  `yaml:"amount_above"`       // bids above this amount (posting currency)
	ClientSpendAbove float64  `yaml:"client_spend_above"` // clients who spent more than this
	Keywords         []string `yaml:"keywords"`           // word-boundary phrases in title or description
	// Share sends this fraction of the rest, chosen by a hash of the posting
	// (so every attempt at a posting chooses the same), in [0, 1].
	Share    float64  `yaml:"share"`
	Deadline Duration `yaml:"deadline"` // default 24h
}

func (c ReviewConfig) enabled() bool {
	return c.All || c.AmountAbove > 0 || c.ClientSpendAbove > 0 || len(c.Keywords) > 0 || c.Share > 0
}

func (c ReviewConfig) validate(v *validator) {
	v.nonNegative("review.amount_above", c.AmountAbove)
	v.nonNegative("review.client_spend_above", c.ClientSpendAbove)
	if !(c.Share >= 0 && c.Share <= 1) {
		v.addf("review.share", "want 0..1, got %v", c.Share)
	}
	if c.Deadline < 0 {
		v.addf("review.deadline", "must not be negative")
	}
}

// ReviewDeadline is how long a reviewer has.
func (e *Engine) ReviewDeadline() time.Duration {
	if d := time.Duration(e.review.Deadline); d > 0 {
		return d
	}
	return DefaultReviewDeadline
}

// reviewReason says why d, a bid on p, goes to review, or "" if it does not.
func (e *Engine) reviewReason(s *scratch, p marketplace.Posting, d Decision) string {
	r := e.review
	switch {
	case r.All:
		return "every bid is reviewed (review.all)"
	case r.AmountAbove > 0 && d.Amount > r.AmountAbove:
		return fmt.Sprintf("amount %.2f %s above %.2f", d.Amount, d.Currency, r.AmountAbove)
	case r.ClientSpendAbove > 0 && p.Client.TotalSpend > r.ClientSpendAbove:
		return fmt.Sprintf("client spent %.2f, above %.2f", p.Client.TotalSpend, r.ClientSpendAbove)
	}
	if e.reviewWords != nil {
		s.buf, s.title = appendWords(s.buf[:0], s.title[:0], p.Title)
		s.buf, s.desc = appendWords(s.buf, s.desc[:0], p.Description)
		for _, spans := range [][]span{s.title, s.desc} {
			if id := e.reviewWords.find(s.buf, spans); id >= 0 {
				return fmt.Sprintf("review keyword %q", e.reviewWords.phrases[id].keyword)
			}
		}
	}
	if r.Share > 0 && shareOf(p) < r.Share {
		return fmt.Sprintf("in the reviewed share (%.0f%%)", r.Share*100)
	}
	return ""
}

// shareOf maps a posting to [0, 1) by a hash of its identity: the same on
// every attempt and every instance.
func shareOf(p marketplace.Posting) float64 {
	h := sha256.Sum256([]byte(p.MarketplaceID + "\x00" + p.ID))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}

// CheckBid checks a bid a reviewer edited against the bounds the rules'
// own bids keep: a positive amount in cents within the amount rule's
// min_amount/max_amount for the posting's budget type, and a non-empty
// proposal within max_bytes.
func (e *Engine) CheckBid(p marketplace.Posting, amount float64, proposal string) error {
	rule := e.amountFixed
	if p.Budget.Type == marketplace.BudgetHourly {
		rule = e.amountHourly
	}
	switch {
	case !(amount > 0) || math.IsInf(amount, 0):
		return fmt.Errorf("amount %v must be positive", amount)
	case roundCents(amount) != amount:
		return fmt.Errorf("amount %v has more than cents", amount)
	case rule.MinAmount > 0 && amount < rule.MinAmount:
		return fmt.Errorf("amount %.2f below the rules' min_amount %.2f", amount, rule.MinAmount)
	case rule.MaxAmount > 0 && amount > rule.MaxAmount:
		return fmt.Errorf("amount %.2f above the rules' max_amount %.2f", amount, rule.MaxAmount)
	case proposal == "" || !utf8.ValidString(proposal):
		return fmt.Errorf("the proposal must be non-empty UTF-8 text")
	case len(proposal) > e.proposal.maxBytes:
		return fmt.Errorf("the proposal is %d bytes, above max_bytes %d", len(proposal), e.proposal.maxBytes)
	}
	return nil
}
