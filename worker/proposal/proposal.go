package proposal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bidder/bidder/marketplace"
)

// Sources of a proposal's text, the values of Proposal.Source and of the
// source label of bidder_proposals_total.
const (
	SourceTemplate = "template" // the rules' proposal template (Decision.Proposal)
	SourceModel    = "model"    // a language model's answer that passed Check
	SourceNone     = "none"     // metric label only: no text, the writer asked to wait
)

// Request is what a Writer needs to write one proposal.
type Request struct {
	Posting  marketplace.Posting
	Amount   float64 // the bid amount the rules decided
	Currency string
	// Template is the rules engine's rendered proposal (Decision.Proposal):
	// the text of the template writer and of every fallback. It is rendered
	// and checked by worker/rules, so that there is one template engine.
	Template string
}

// Proposal is a written proposal, as stored and as sent.
type Proposal struct {
	Text   string `json:"text"`
	Source string `json:"source"` // SourceTemplate or SourceModel
	// Model is the model that wrote Text, or that was asked and failed when
	// Source is template and Fallback says why; "" for the template writer.
	Model string `json:"model,omitempty"`
	// PromptHash is "sha256:<hex>" of the exact messages sent to the model,
	// so a stored proposal can be traced to the prompt that produced it.
	PromptHash string `json:"prompt_hash,omitempty"`
	// Fallback is set when a model writer sent the template instead: why,
	// as a result (ResultModelError, ResultRejected, ResultSpendCap), and
	// FallbackReason in words ("HTTP 500", "rejected: url (\"evil.example\")").
	Fallback       string `json:"fallback,omitempty"`
	FallbackReason string `json:"fallback_reason,omitempty"`
	// Tokens is the usage the model reported (or was charged when it did not).
	Tokens    int64     `json:"tokens,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Preview is Text on one line, cut to at most n runes, for log lines and
// dry-run output.
func (p Proposal) Preview(n int) string {
	s := strings.Join(strings.Fields(p.Text), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos] + "…"
		}
		i++
	}
	return s
}

// Writer writes the proposal for one posting. Implementations are safe for
// concurrent use. A Writer does not store; Store.GetOrCreate does, so that
// every attempt sends the text the first one wrote.
type Writer interface {
	Write(ctx context.Context, req Request) (Proposal, error)
}

var (
	// ErrWait means no proposal now: the model failed or the token budget is
	// spent, and on_error is "wait". Retry the task later (after WaitError.After)
	// without counting it as a failure; nothing was stored.
	ErrWait = errors.New("proposal: waiting for the model")
	// ErrInvalidRequest: the Request cannot be written (no template text, no
	// marketplace ID); a bug in the caller, retrying will not help.
	ErrInvalidRequest = errors.New("proposal: invalid request")
)

// WaitError is the ErrWait the model writer returns, with how long to wait.
type WaitError struct {
	After  time.Duration
	Result string // ResultModelError or ResultSpendCap
	Err    error  // the cause; safe to log (no secrets)
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("proposal: waiting %s for the model (%s): %v", e.After.Round(time.Second), e.Result, e.Err)
}

// Is makes a WaitError match ErrWait.
func (e *WaitError) Is(target error) bool { return target == ErrWait }

func (e *WaitError) Unwrap() error { return e.Err }

func checkRequest(req Request) error {
	switch {
	case req.Posting.MarketplaceID == "" || req.Posting.ID == "":
		return fmt.Errorf("%w: posting without marketplace or ID", ErrInvalidRequest)
	case strings.TrimSpace(req.Template) == "":
		return fmt.Errorf("%w: no template text for %s:%s", ErrInvalidRequest, req.Posting.MarketplaceID, req.Posting.ID)
	}
	return nil
}
