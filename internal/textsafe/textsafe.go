// Package textsafe makes text from outside (marketplace answers, Redis
// contents) safe to show on a terminal. A marketplace that can put an
// escape sequence into an error text or a posting title could otherwise
// clear the operator's screen, retitle the terminal or forge log lines
// wherever bidder prints that text: logs, `bidder ledger get`, `scan-once`.
//
// The adapters clean what they return (Line, Text); the log encoder escapes
// what it writes (Escape), so that whatever was there stays visible.
package textsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Unsafe reports whether r changes a terminal's state or how the text
// around it is displayed: C0 controls and DEL (ESC starts every escape
// sequence), C1 controls U+0080-U+009F (8-bit CSI and OSC), the bidi
// embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069, and
// the line and paragraph separators U+2028 and U+2029.
func Unsafe(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// Clean reports whether s is valid UTF-8 without an unsafe rune.
func Clean(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || Unsafe(r) {
			return false
		}
		i += n
	}
	return true
}

// Line returns s as one line of safe text: tabs and line breaks become
// spaces, every other unsafe rune and every invalid UTF-8 byte becomes
// U+FFFD. With max > 0 it is cut to at most max bytes, on a rune boundary,
// and "..." marks the cut.
func Line(s string, max int) string { return clean(s, max, false) }

// Text is Line for text with paragraphs (a posting's description): tabs
// and newlines stay, "\r\n" becomes "\n", the rest is as Line.
func Text(s string) string { return clean(s, 0, true) }

func clean(s string, max int, multiline bool) string {
	cut := max > 0 && len(s) > max
	if !cut && Clean(s) && (!multiline || !strings.Contains(s, "\r")) {
		return s
	}
	var b strings.Builder
	if max > 0 {
		b.Grow(min(len(s), max+3))
	} else {
		b.Grow(len(s))
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case multiline && (r == '\n' || r == '\t'):
		case multiline && r == '\r' && strings.HasPrefix(s[i:], "\n"):
			continue
		case r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
			r = ' '
		case (r == utf8.RuneError && n == 1) || Unsafe(r):
			r = utf8.RuneError
		}
		if max > 0 && b.Len()+utf8.RuneLen(r) > max {
			b.WriteString("...")
			return b.String()
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Escape returns s with every unsafe rune written as an escape (\n, \r,
// \t, else \u001b style, valid in JSON strings too) and every invalid UTF-8
// byte as \xNN, for logs: what was there stays visible, nothing of it acts.
func Escape(s string) string {
	if Clean(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case Unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
