package proposal

import (
	"errors"
	"strings"
	"testing"
)

func testChecker(mut func(*Config)) *checker {
	c := Config{Writer: WriterOpenAI, MaxLength: 400, Profile: Profile{
		Portfolio: []string{"Price scraper for a retailer, code at github.com/ada/scraper", "Call me on +49 30 1234567 (portfolio contact)"},
	}}
	if mut != nil {
		mut(&c)
	}
	return newChecker(c)
}

func TestCheckAcceptsOrdinaryProposals(t *testing.T) {
	ck := testChecker(nil)
	for _, text := range []string{
		"Hello,\n\nI have built Node.js and ASP.NET services since 2019 and can deliver this for 1,500.00 USD, i.e. within 2-3 weeks.",
		"I work with Vue.js, Next.js and Go (e.g. gRPC); 10 years, 2015-2025, 40+ projects.",
		"My scraper (github.com/ada/scraper) does exactly this.", // in the portfolio
		"  Trimmed, with a tab\tinside.  ",
		"Prices: 120.50 EUR per day, 3 days.",
	} {
		if _, err := ck.check(text); err != nil {
			t.Errorf("check(%q) = %v, want accepted", text, err)
		}
	}
}

func TestCheckRejects(t *testing.T) {
	long := strings.Repeat("ä", 401)
	for _, tc := range []struct {
		name, text, reason string
	}{
		{"empty", " \n\t ", RejectEmpty},
		{"too long in characters", long, RejectTooLong},
		{"scheme URL", "See https://evil.example/x for my work.", RejectURL},
		{"other scheme", "Join tg://resolve?domain=me", RejectURL},
		{"www", "Visit www.evil-site.net today", RejectURL},
		{"bare domain", "My site evilsite.com has samples.", RejectURL},
		{"bare domain with path", "See portfolio.io/ada.", RejectURL},
		{"IP", "Server at 203.0.113.7 is ready.", RejectURL},
		{"zero-width split domain", "Go to evil\u200b.com now", RejectURL},
		{"e-mail", "Write to ada@example.org please.", RejectEmail},
		{"obfuscated e-mail", "Write to ada (at) example (dot) org please.", RejectEmail},
		{"phone +", "Call +44 20 7946 0958.", RejectPhone},
		{"phone US", "Call (555) 123-4567 x", RejectPhone},
		{"template marker open", "Hello {{.Title}}", RejectMarker},
		{"template marker close", "Hello }}", RejectMarker},
		{"jinja marker", "Hello {% name %}", RejectMarker},
		{"placeholder", "Best regards,\n[Your Name]", RejectPlaceholder},
		{"angle placeholder", "Dear <client name>,", RejectPlaceholder},
		{"prompt echo", "END POSTING-0123456789abcdef", RejectPromptEcho},
		{"rules echo", "Rules that always apply: ...", RejectPromptEcho},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testChecker(nil).check(tc.text)
			var re *RejectError
			if !errors.As(err, &re) || !errors.Is(err, ErrRejected) {
				t.Fatalf("check(%q) = %v, want a RejectError", tc.text, err)
			}
			if re.Reason != tc.reason {
				t.Fatalf("check(%q) reason %q, want %q (%v)", tc.text, re.Reason, tc.reason, err)
			}
		})
	}
}

func TestCheckAllowances(t *testing.T) {
	text := "See https://ada.dev and write to ada@example.org or call +44 20 7946 0958."
	if _, err := testChecker(func(c *Config) { c.AllowURLs = true }).check(text); !errors.Is(err, ErrRejected) {
		t.Fatalf("allow_urls alone accepted contacts: %v", err)
	}
	if _, err := testChecker(func(c *Config) { c.AllowContacts = true }).check(text); err == nil || !strings.Contains(err.Error(), RejectURL) {
		t.Fatalf("allow_contacts alone: %v, want a URL rejection", err)
	}
	// With contacts allowed, the domain of an e-mail is not a link.
	if _, err := testChecker(func(c *Config) { c.AllowContacts = true }).check("Write to ada@example.org."); err != nil {
		t.Fatalf("allowed e-mail rejected as a URL: %v", err)
	}
	if _, err := testChecker(func(c *Config) { c.AllowURLs, c.AllowContacts = true, true }).check(text); err != nil {
		t.Fatalf("both allowed: %v", err)
	}
	// A phone number from the portfolio is the user's own.
	if _, err := testChecker(nil).check("Call me on +49 30 1234567."); err != nil {
		t.Fatalf("portfolio phone rejected: %v", err)
	}
}

func TestCheckNormalizes(t *testing.T) {
	got, err := testChecker(nil).check("\r\n Hello\r\nworld\u200b! \u202e\n")
	if err != nil {
		t.Fatal(err)
	}
	if got != "Hello\nworld!" {
		t.Fatalf("normalized to %q", got)
	}
}

func TestPreviewIsOneShortLine(t *testing.T) {
	p := Proposal{Text: "Hello,\n\n  I can   deliver für 450 €.\nBest"}
	if got := p.Preview(100); got != "Hello, I can deliver für 450 €. Best" {
		t.Fatalf("Preview(100) = %q", got)
	}
	if got := p.Preview(10); got != "Hello, I c…" {
		t.Fatalf("Preview(10) = %q", got)
	}
}
