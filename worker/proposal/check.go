package proposal

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrRejected matches every answer Check refuses.
var ErrRejected = errors.New("proposal: model answer rejected")

// Reasons a model answer is rejected (RejectError.Reason).
const (
	RejectEmpty       = "empty"
	RejectTooLong     = "too_long"
	RejectCutOff      = "cut_off" // the model stopped at max_tokens
	RejectRefusal     = "refusal" // the model refused (message.refusal)
	RejectURL         = "url"
	RejectEmail       = "email"
	RejectPhone       = "phone"
	RejectMarker      = "template_marker"
	RejectPlaceholder = "placeholder"
	RejectPromptEcho  = "prompt_echo"
)

// RejectError says why an answer was refused.
type RejectError struct {
	Reason string
	Detail string // the offending piece, cut short
}

func (e *RejectError) Error() string {
	if e.Detail == "" {
		return "rejected: " + e.Reason
	}
	return fmt.Sprintf("rejected: %s (%q)", e.Reason, e.Detail)
}

// Is makes a RejectError match ErrRejected.
func (e *RejectError) Is(target error) bool { return target == ErrRejected }

func reject(reason, detail string) error {
	if utf8.RuneCountInString(detail) > 60 {
		detail = string([]rune(detail)[:60]) + "…"
	}
	return &RejectError{Reason: reason, Detail: detail}
}

// The patterns look for what a model talked into it by a posting would
// emit: a link, an address or a number to contact someone off the
// marketplace. They err towards rejecting; a rejected answer costs only the
// template. Spelled-out obfuscations ("example dot com", "five five five")
// and look-alike characters are not caught: see docs/proposals.md.
var (
	reScheme = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.\-]*://[^\s<>"']+`)
	reWWW    = regexp.MustCompile(`(?i)\bwww\d?\.[^\s<>"']+`)
	// Bare domains with common TLDs only: "Node.js" or "ASP.NET" are
	// skills, "example.com" is a link.
	reDomain = regexp.MustCompile(`(?i)\b(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+` +
		`(?:com|net|org|io|co|me|app|dev|ly|gl|gd|xyz|info|biz|ru|cn|tk|link|site|online|page|sh|to|gg|ai|us|uk|de|so|cc|ws|click|top|live|store|shop|tech|pro|eu|in|tv|fm|su|one|cloud|website|space|fun|icu|bit)\b(?:/[^\s<>"']*)?`)
	reIP    = regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}\b`)
	reEmail = regexp.MustCompile(`(?i)[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}`)
	// "name (at) example (dot) com"; the unbracketed " at " would catch
	// "good at React.js".
	reEmailObf = regexp.MustCompile(`(?i)[a-z0-9._%+\-]+\s*[(\[{]\s*at\s*[)\]}]\s*[a-z0-9\-]+(?:\s*(?:[(\[{]\s*dot\s*[)\]}]|\.)\s*[a-z0-9\-]+)+`)
	rePhone    = regexp.MustCompile(`\+?\(?\d[\d \t\-./()]{5,}\d`)
	reMarker   = regexp.MustCompile(`\{\{|\}\}|\{%|%\}`)
	rePlace    = regexp.MustCompile(`(?i)[\[<](?:your|client|company|name|insert|freelancer|recipient|hiring)[^\]>\n]{0,40}[\]>]`)
	rePrompt   = regexp.MustCompile(`(?i)\b(?:BEGIN|END) POSTING-|POSTING-[0-9a-f]{16}|rules that always apply`)
)

// techNames are technologies spelled like domains; a proposal names them.
// The profile's skills are allowed the same way.
var techNames = []string{"asp.net", "vb.net", "ado.net", "socket.io"}

// checker validates a model's answer before it may be sent.
type checker struct {
	maxLength     int
	allowURLs     bool
	allowContacts bool
	allowed       []string // lower-cased profile.portfolio: what may be linked anyway
	names         []string // lower-cased techNames and profile.skills: not links
}

func newChecker(c Config) *checker {
	ck := &checker{maxLength: c.maxLength(), allowURLs: c.AllowURLs, allowContacts: c.AllowContacts}
	for _, line := range c.Profile.Portfolio {
		ck.allowed = append(ck.allowed, strings.ToLower(line))
	}
	ck.names = append(ck.names, techNames...)
	for _, s := range c.Profile.Skills {
		ck.names = append(ck.names, strings.ToLower(strings.TrimSpace(s)))
	}
	return ck
}

// check returns the text to send (normalized: trimmed, invisible
// characters removed) or a *RejectError.
func (c *checker) check(raw string) (string, error) {
	text := normalize(raw)
	if text == "" {
		return "", reject(RejectEmpty, "")
	}
	if n := utf8.RuneCountInString(text); n > c.maxLength {
		return "", reject(RejectTooLong, fmt.Sprintf("%d characters, limit %d", n, c.maxLength))
	}
	if m := reMarker.FindString(text); m != "" {
		return "", reject(RejectMarker, m)
	}
	if m := rePlace.FindString(text); m != "" {
		return "", reject(RejectPlaceholder, m)
	}
	if m := rePrompt.FindString(text); m != "" {
		return "", reject(RejectPromptEcho, m)
	}
	// E-mail addresses first, and blanked out, so that with contacts
	// allowed the domain of an address is not taken for a link.
	scan := text
	for _, re := range []*regexp.Regexp{reEmail, reEmailObf} {
		for _, m := range re.FindAllString(scan, -1) {
			if !c.allowContacts && !c.inProfile(m) {
				return "", reject(RejectEmail, m)
			}
		}
		scan = re.ReplaceAllStringFunc(scan, func(m string) string { return strings.Repeat(" ", len(m)) })
	}
	if !c.allowURLs {
		for _, re := range []*regexp.Regexp{reScheme, reWWW, reDomain, reIP} {
			for _, m := range re.FindAllString(scan, -1) {
				m = strings.TrimRight(m, ".,;:!?)")
				if !c.inProfile(m) && !slices.Contains(c.names, strings.ToLower(m)) {
					return "", reject(RejectURL, m)
				}
			}
		}
	}
	if !c.allowContacts {
		for _, m := range rePhone.FindAllString(scan, -1) {
			if isPhone(m) && !c.inProfile(m) {
				return "", reject(RejectPhone, m)
			}
		}
	}
	return text, nil
}

// isPhone: nine digits or more, or seven with a leading "+", reads as a
// phone number; fewer is an amount, a year or a date range.
func isPhone(m string) bool {
	digits := 0
	for _, r := range m {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	return digits >= 9 || (strings.HasPrefix(m, "+") && digits >= 7)
}

func (c *checker) inProfile(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return false
	}
	for _, line := range c.allowed {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// normalize trims the answer and drops what a reader cannot see but a
// pattern would trip over: zero-width and bidi format characters split
// "evil.com" into pieces no pattern matches. Line breaks become "\n".
func normalize(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r == '\r':
			return '\n'
		case unicode.Is(unicode.Cf, r), unicode.IsControl(r):
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
