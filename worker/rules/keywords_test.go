package rules

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestKeywordMatching(t *testing.T) {
	for _, tc := range []struct {
		keyword, text string
		want          bool
	}{
		// The seed's bug: substring matching.
		{"live", "We deliver reports weekly", false},
		{"live", "Lively team, livestream setup", false},
		{"live", "Live support needed", true},
		{"live", "must go live, soon", true},
		{"live", "a live-stream overlay", true},
		// Case and punctuation around a word.
		{"python", "Python, pandas and SQL", true},
		{"python", "(PYTHON)", true},
		{"python", "python.", true},
		{"Python", "need python", true},
		// A version suffix is another word: list "python3" if you want it.
		{"python", "python3 scripts", false},
		{"python", "pythonic code", false},
		{"python3", "Python3 scripts", true},
		// Phrases, with any separators between their words.
		{"video call", "weekly Video Call with the team", true},
		{"video call", "a video-call now and then", true},
		{"video call", "video\n\tcall", true},
		{"video call", "videocall", false},
		{"video call", "video calls", false},
		{"video call", "call video", false},
		{"video call", "video", false}, // phrase longer than the text
		{"in-person", "In person meetings", true},
		{"in-person", "in-person", true},
		{"in person", "IN-PERSON only", true},
		{"in-person", "in personal matters", false},
		// Symbols glued to a word name a different skill.
		{"c++", "Senior C++ developer", true},
		{"c", "Senior C++ developer", false},
		{"c#", "C#/.NET", true},
		{"c", "C#/.NET", false},
		{"net", "C#/.NET", true},
		{"c", "plain C, please", true},
		{"a", "a+b", true},
		// Non-ASCII.
		{"café", "Le CAFÉ du coin", true},
		{"straße", "STRASSE", false}, // per-rune lower-casing, no full folding
		{"data", "datenbank", false},
		{"données", "analyse de DONNÉES", true},
		// Empty text.
		{"go", "", false},
	} {
		m := newMatcher([]string{tc.keyword})
		_, got := m.matchText(tc.text)
		if got != tc.want {
			t.Errorf("keyword %q in %q: got %v, want %v", tc.keyword, tc.text, got, tc.want)
		}
	}
}

func TestMatcherReportsEarliestKeyword(t *testing.T) {
	m := newMatcher([]string{"report", "data", "data pipeline", "pipeline"})
	kw, ok := m.matchText("Build a data pipeline and a report")
	if !ok || kw != "data" {
		t.Fatalf("got %q %v, want the earliest, first configured: data", kw, ok)
	}
	m = newMatcher([]string{"data pipeline", "data"})
	if kw, _ := m.matchText("Build a data pipeline"); kw != "data pipeline" {
		t.Fatalf("on a tie the first configured keyword wins, got %q", kw)
	}
	if newMatcher(nil) != nil || newMatcher([]string{"--", " "}) != nil {
		t.Fatal("a matcher with no usable keywords must be nil so the rule is skipped")
	}
}

// FuzzKeywordMatch: matching never panics, a match is always there in the
// text (the lower-cased text contains every word of the keyword, and the
// keyword itself when it is one word written in its canonical form), and a
// keyword always matches its own text.
func FuzzKeywordMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"live", "deliver"}, {"video call", "Video-Call"}, {"c++", "C++"}, {"in-person", "in person"},
		{"python", "Python, python3"}, {"é", "É"}, {"x", "\xff\xfex"}, {"+", "++"}, {"İ", "i̇"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, keyword, text string) {
		words := keywordWords(keyword)
		m := newMatcher([]string{keyword})
		if m == nil {
			if len(words) != 0 {
				t.Fatalf("keyword %q has words %q but no matcher", keyword, words)
			}
			return
		}
		got, ok := m.matchText(text)
		if ok {
			if got != keyword {
				t.Fatalf("matched %q, configured %q", got, keyword)
			}
			lower := strings.ToLower(text)
			for _, w := range words {
				if !strings.Contains(lower, w) {
					t.Fatalf("keyword %q matched %q but %q is not in %q", keyword, text, w, lower)
				}
			}
			if len(words) == 1 && words[0] == keyword && !strings.Contains(lower, keyword) {
				t.Fatalf("keyword %q matched %q but is not a substring of %q", keyword, text, lower)
			}
		}
		// A keyword is found in its own canonical text, alone or
		// surrounded by separators.
		canon := strings.Join(words, " ")
		if utf8.ValidString(canon) {
			for _, txt := range []string{canon, "x " + canon + ", y", "(" + canon + ")"} {
				if _, ok := m.matchText(txt); !ok {
					t.Fatalf("keyword %q (words %q) not found in %q", keyword, words, txt)
				}
			}
		}
	})
}

func TestKeywordMatchingDoesNotAllocate(t *testing.T) {
	m := newMatcher([]string{"video call", "in-person", "live", "python"})
	text := strings.Repeat("We deliver data reports in Python, weekly, without video. ", 20)
	buf, words := appendWords(nil, nil, text)
	allocs := testing.AllocsPerRun(100, func() {
		buf, words = appendWords(buf[:0], words[:0], text)
		if m.find(buf, words) < 0 {
			panic("python not found")
		}
	})
	if allocs != 0 {
		t.Fatalf("find with warm buffers allocates %v times per run", allocs)
	}
}
