package textsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// hostile holds one of everything a terminal acts on.
const hostile = "a\x1b]0;owned\x07\x1b[2J\x1b[Hconfig OK\r\nb\tc\u009b31m\u202eevil\u2066x\u2069\u2028\x7f\xff\x9b" + "é✓"

func TestLineAndText(t *testing.T) {
	for _, c := range []struct {
		name, got, want string
	}{
		{"line", Line(hostile, 0), "a\ufffd]0;owned\ufffd\ufffd[2J\ufffd[Hconfig OK  b c\ufffd31m\ufffdevil\ufffdx\ufffd\ufffd\ufffd\ufffd\ufffdé✓"},
		{"text", Text("p1\r\np2\n\tx\x1b[2J\rz"), "p1\np2\n\tx\ufffd[2J z"},
		{"clean stays", Line("Go developer – €500, 日本語 ✓", 0), "Go developer – €500, 日本語 ✓"},
		{"cut on a rune", Line("ééé", 5), "éé..."},
		{"cut counts replacements", Line("\x1b\x1b\x1b", 4), "\ufffd..."},
		{"no cut when it fits", Line("abc", 3), "abc"},
		{"escape", Escape(hostile), `a\u001b]0;owned\u0007\u001b[2J\u001b[Hconfig OK\r\nb\tc\u009b31m\u202eevil\u2066x\u2069\u2028\u007f\xff\x9bé✓`},
	} {
		if c.got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, c.got, c.want)
		}
	}
}

func FuzzClean(f *testing.F) {
	f.Add(hostile, 10)
	f.Add("plain", 0)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max %= 1000
		for name, out := range map[string]string{"Line": Line(s, max), "Escape": Escape(s)} {
			if !Clean(out) {
				t.Fatalf("%s(%q) = %q is not clean", name, s, out)
			}
		}
		if l := Line(s, max); max > 0 && len(l) > max+3 {
			t.Fatalf("Line(%q, %d) has %d bytes", s, max, len(l))
		}
		if tx := Text(s); !utf8.ValidString(tx) || strings.ContainsFunc(tx, func(r rune) bool { return Unsafe(r) && r != '\n' && r != '\t' }) {
			t.Fatalf("Text(%q) = %q", s, tx)
		}
		if Clean(s) && Escape(s) != s {
			t.Fatalf("Escape changed clean %q", s)
		}
	})
}
