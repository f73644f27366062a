package freelancer

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
)

// escapes is what a hostile marketplace puts into any text it sends: clear
// the screen, retitle the terminal, forge a line, flip the text direction,
// an 8-bit CSI.
const escapes = "\x1b[2J\x1b[H\x1b]0;owned\x07config OK\r\n\u202eevil\u009b31m"

// TestServerTextIsCleanedAtTheBoundary: titles, descriptions, skills and
// error texts are shown on terminals (logs, `bidder ledger get`); nothing
// the adapter returns may carry what a terminal acts on. Non-ASCII text
// that is harmless stays.
func TestServerTextIsCleanedAtTheBoundary(t *testing.T) {
	f := newFakeServer(t)
	p := project(1, 1_700_000_000)
	p.Title, p.Full, p.Jobs = "Café – "+escapes, "para one\n\tpara two "+escapes, []string{"Go" + escapes}
	f.add(p)
	page, err := f.adapter(t, map[string]string{OptFullDescription: "true"}).Scan(ctx, "", 10)
	if err != nil || len(page.Postings) != 1 {
		t.Fatalf("scan: %+v %v", page, err)
	}
	got := page.Postings[0]
	if !strings.HasPrefix(got.Title, "Café – ") || !strings.HasPrefix(got.Description, "para one\n\tpara two ") {
		t.Errorf("harmless text changed: title %q, description %q", got.Title, got.Description)
	}
	texts := []string{got.Title, strings.Join(got.Skills, ","), strings.NewReplacer("\n", "", "\t", "").Replace(got.Description)}

	a := errorServer(t, 422, nil, envBody("ProjectExceptionCodes."+escapes, "refused "+escapes))
	_, err = a.PlaceBid(ctx, "12", marketplace.Bid{Amount: 10, Currency: "USD", Proposal: "x"})
	if err == nil {
		t.Fatal("422 accepted")
	}
	texts = append(texts, err.Error())
	for _, s := range texts {
		if !textsafe.Clean(s) {
			t.Errorf("adapter returned %q", s)
		}
	}
}

// TestDroppedProjectsLogOneLine: one warning per dropped project let one
// hostile 8 MiB answer write millions of lines. Dropped projects are
// reported once per answer: how many, and the first few problems.
func TestDroppedProjectsLogOneLine(t *testing.T) {
	f := newFakeServer(t)
	for i := int64(1); i <= 60; i++ {
		p := project(i, 1_700_000_000+i)
		if i > 1 {
			p.Currency = "" // cannot be mapped: dropped
		}
		f.add(p)
	}
	logs, observed := observer.New(zap.WarnLevel)
	a := f.adapter(t, nil)
	a.log = zap.New(logs)
	page, err := a.Scan(ctx, "", 100)
	if err != nil || len(page.Postings) != 1 {
		t.Fatalf("scan: %d postings, %v", len(page.Postings), err)
	}
	if observed.Len() != 1 {
		t.Fatalf("%d warnings for one answer, want 1", observed.Len())
	}
	fields := observed.All()[0].ContextMap()
	first, _ := fields["first"].([]any)
	if fields["dropped"] != int64(59) || len(first) != maxDroppedLogged || !strings.Contains(first[0].(string), "no 3-letter currency code") {
		t.Fatalf("warning fields %v; want dropped=59 and the first %d problems", fields, maxDroppedLogged)
	}
}
