package rules

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/bidder/bidder/marketplace"
)

// ProposalData is what the proposal template sees: the Posting's fields under
// their own names ({{.Title}}, {{.Budget.Max}}, {{.Client.Country}},
// {{.Skills}}, ...) plus the bid amount Decide settled on. It copies the
// fields rather than embedding Posting because text/template resolves a
// promoted field with a reflective search that allocates on every access,
// on the hot path.
type ProposalData struct {
	MarketplaceID string
	ID            string
	Title         string
	Description   string
	Budget        marketplace.Budget
	Skills        []string
	URL           string
	PostedAt      time.Time
	Client        marketplace.Client
	Status        marketplace.Status
	Amount        float64
}

// NewProposalData is what a template over p sees when the bid is amount.
func NewProposalData(p marketplace.Posting, amount float64) *ProposalData {
	return &ProposalData{
		MarketplaceID: p.MarketplaceID, ID: p.ID, Title: p.Title, Description: p.Description,
		Budget: p.Budget, Skills: p.Skills, URL: p.URL, PostedAt: p.PostedAt, Client: p.Client,
		Status: p.Status, Amount: amount,
	}
}

// ErrProposalTooLong is the cause when a rendered proposal exceeds the cap.
var ErrProposalTooLong = errors.New("proposal exceeds max_bytes")

// proposalFuncs are deliberately few and total: none can panic or block.
var proposalFuncs = template.FuncMap{
	// money formats an amount with two decimals: {{money .Amount}}.
	"money": func(x float64) string { return fmt.Sprintf("%.2f", x) },
	// truncate keeps the first n runes: {{truncate 80 .Title}}.
	"truncate": func(n int, s string) string {
		if n < 0 {
			n = 0
		}
		for i := range s {
			if n == 0 {
				return s[:i]
			}
			n--
		}
		return s
	},
	// join takes the separator first so it reads well in a pipeline:
	// {{join ", " .Skills}}.
	"join":  func(sep string, elems []string) string { return strings.Join(elems, sep) },
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

// TemplateFuncs returns the functions proposal templates may call (money,
// truncate, join, lower, upper), as a fresh map: other templates over
// postings (worker/proposal's prompts) offer the same ones, so an operator
// learns one set.
func TemplateFuncs() template.FuncMap {
	return maps.Clone(proposalFuncs)
}

type proposal struct {
	tmpl     *template.Template
	maxBytes int
}

// samplePosting has every field set, so that executing the template on it
// at load catches misspelled fields ({{.Titel}}), which text/template only
// reports at execution.
var samplePosting = marketplace.Posting{
	MarketplaceID: "sample", ID: "p-1", Title: "Sample title", Description: "Sample description",
	Budget:   marketplace.Budget{Type: marketplace.BudgetFixed, Min: 100, Max: 500, Currency: "USD"},
	Skills:   []string{"go"},
	URL:      "https://example.invalid/p-1",
	PostedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	Client:   marketplace.Client{Rating: 4.5, TotalSpend: 1000, Country: "DE"},
	Status:   marketplace.StatusOpen,
}

// SamplePosting returns the posting templates are executed on at load, with
// every field set; other templates over postings check themselves on it.
func SamplePosting() marketplace.Posting {
	p := samplePosting
	p.Skills = append([]string(nil), samplePosting.Skills...)
	return p
}

func compileProposal(c ProposalConfig) (*proposal, error) {
	t, err := template.New("proposal").Funcs(proposalFuncs).Option("missingkey=error").Parse(c.Template)
	if err != nil {
		return nil, fmt.Errorf("does not parse: %w", err)
	}
	p := &proposal{tmpl: t, maxBytes: c.MaxBytes}
	if p.maxBytes == 0 {
		p.maxBytes = DefaultProposalMaxBytes
	}
	var s scratch
	if _, err := p.render(&s, NewProposalData(samplePosting, 450)); err != nil {
		return nil, fmt.Errorf("fails on a sample posting: %w", err)
	}
	return p, nil
}

// capWriter stops the template as soon as the output would exceed max, so a
// huge description pasted into the proposal costs no more than max bytes.
type capWriter struct {
	buf bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		return 0, ErrProposalTooLong
	}
	return w.buf.Write(p)
}

func (p *proposal) render(s *scratch, data *ProposalData) (out string, err error) {
	defer func() {
		// text/template re-panics runtime errors; a posting must never take
		// the worker down, so they become a skip like any other failure.
		if r := recover(); r != nil {
			err = fmt.Errorf("template panicked: %v", r)
		}
	}()
	w := &s.out
	w.buf.Reset()
	w.max = p.maxBytes
	if err := p.tmpl.Execute(w, data); err != nil {
		if errors.Is(err, ErrProposalTooLong) {
			return "", fmt.Errorf("%w (%d)", ErrProposalTooLong, p.maxBytes)
		}
		return "", err
	}
	out = w.buf.String()
	if !utf8.ValidString(out) {
		// Postings are outside input; do not forward broken text. Dropping
		// (not replacing) bad bytes keeps the result within the cap.
		out = strings.ToValidUTF8(out, "")
	}
	if strings.TrimSpace(out) == "" {
		return "", errors.New("template rendered an empty proposal")
	}
	return out, nil
}
