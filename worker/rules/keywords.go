package rules

import (
	"unicode"
	"unicode/utf8"
)

// Keyword matching works on words, not substrings (the seed matched "live"
// inside "deliver"). Text and keywords are cut into words the same way and a
// keyword matches where its words appear consecutively in the text. Cutting
// once per field and looking words up in a map keeps Decide linear in the
// text length however many keywords there are, and allocation-free.

// isWordRune: letters, digits and combining marks (so "café" written with a
// combining accent stays one word). Everything else, including '-', '_',
// apostrophes and dots, separates words.
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiWord[r] != 0
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// asciiWord maps an ASCII word byte to its lower case and every other byte
// to 0. Postings are mostly ASCII and cutting them up is most of Decide's
// time, so this case is a table lookup. Never written after init.
var asciiWord = func() (t [utf8.RuneSelf]byte) {
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c
	}
	for c := byte('a'); c <= 'z'; c++ {
		t[c] = c
		t[c-'a'+'A'] = c
	}
	return t
}()

// span is one word in a scratch buffer of lower-cased text.
type span struct{ start, end int32 }

// appendWords lower-cases the words of text into buf and appends their spans
// to words. A run of '+' or '#' directly after a word and before a non-word
// rune (or the end) belongs to the word, so "C++" and "C#" are words of their
// own and the keyword "c" does not match them; "a+b" is still "a", "b".
func appendWords(buf []byte, words []span, text string) ([]byte, []span) {
	i := 0
	for i < len(text) {
		// Skip separators.
		if c := text[i]; c < utf8.RuneSelf {
			if asciiWord[c] == 0 {
				i++
				continue
			}
		} else if r, n := utf8.DecodeRuneInString(text[i:]); !isWordRune(r) {
			i += n
			continue
		}
		// Copy one word, lower-cased.
		start := len(buf)
		for i < len(text) {
			if c := text[i]; c < utf8.RuneSelf {
				lc := asciiWord[c]
				if lc == 0 {
					break
				}
				buf = append(buf, lc)
				i++
				continue
			}
			r, n := utf8.DecodeRuneInString(text[i:])
			if !isWordRune(r) {
				break
			}
			buf = utf8.AppendRune(buf, unicode.ToLower(r))
			i += n
		}
		if i < len(text) && (text[i] == '+' || text[i] == '#') {
			j := i + 1
			for j < len(text) && (text[j] == '+' || text[j] == '#') {
				j++
			}
			if j == len(text) || !isWordRune(firstRune(text, j)) {
				buf = append(buf, text[i:j]...)
				i = j
			}
		}
		words = append(words, span{int32(start), int32(len(buf))})
	}
	return buf, words
}

func firstRune(s string, i int) rune {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return r
}

// keywordWords cuts a keyword into its lower-cased words.
func keywordWords(kw string) []string {
	buf, spans := appendWords(nil, nil, kw)
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = string(buf[s.start:s.end])
	}
	return out
}

type phrase struct {
	keyword string   // as configured, for reasons
	words   []string // lower-cased words
}

// matcher finds the first configured keyword in a cut-up text. It is
// immutable after newMatcher and safe for concurrent use.
type matcher struct {
	phrases []phrase
	byFirst map[string][]int // first word -> indexes into phrases, in config order
	// firstLens has bit min(len, 63) set for every first word's byte
	// length: most text words are ruled out by it before hashing.
	firstLens uint64
}

func lenBit(n int32) uint64 { return 1 << min(n, 63) }

// newMatcher returns nil when there are no keywords, so callers can skip the
// rule (and the cutting-up of the text) entirely.
func newMatcher(keywords []string) *matcher {
	m := &matcher{byFirst: make(map[string][]int)}
	for _, kw := range keywords {
		ws := keywordWords(kw)
		if len(ws) == 0 {
			continue // Validate rejects these; never match on nothing
		}
		m.byFirst[ws[0]] = append(m.byFirst[ws[0]], len(m.phrases))
		m.firstLens |= lenBit(int32(len(ws[0])))
		m.phrases = append(m.phrases, phrase{keyword: kw, words: ws})
	}
	if len(m.phrases) == 0 {
		return nil
	}
	return m
}

// find returns the index of the keyword that occurs earliest in words (the
// first configured one on a tie), or -1.
func (m *matcher) find(buf []byte, words []span) int {
	for i, w := range words {
		if m.firstLens&lenBit(w.end-w.start) == 0 {
			continue
		}
		ids, ok := m.byFirst[string(buf[w.start:w.end])] // no allocation: map lookup conversion
		if !ok {
			continue
		}
	next:
		for _, id := range ids {
			ws := m.phrases[id].words
			if i+len(ws) > len(words) {
				continue
			}
			for k := 1; k < len(ws); k++ {
				t := words[i+k]
				if string(buf[t.start:t.end]) != ws[k] {
					continue next
				}
			}
			return id
		}
	}
	return -1
}

// matchText cuts text up and runs m over it; for tests and fuzzing, where
// allocation does not matter.
func (m *matcher) matchText(text string) (keyword string, ok bool) {
	buf, words := appendWords(nil, nil, text)
	if id := m.find(buf, words); id >= 0 {
		return m.phrases[id].keyword, true
	}
	return "", false
}
