// Package suggest finds what an operator probably meant: the known names
// closest to a mistyped one, for "did you mean" in command-line and config
// errors.
//
// It is an edit distance in twenty lines (cobra keeps its own unexported,
// and a module for it would be larger than this file), so subcommands,
// flags and config keys suggest alike.
package suggest

import (
	"slices"
	"strings"
)

// maxDistance is the largest edit distance still suggested: one edit in a
// short name (two would turn "host" into "port"), two in a longer one.
func maxDistance(typed string) int {
	if len(typed) <= 4 {
		return 1
	}
	return 2
}

// Closest returns the candidates within a few edits of typed (case
// insensitive; swapping two neighbours is one edit), or that typed is a
// prefix of, nearest first and in the given order among equals. Nothing
// is suggested for an empty name.
func Closest(typed string, candidates []string) []string {
	typed = strings.ToLower(typed)
	if typed == "" {
		return nil
	}
	type hit struct {
		name string
		d    int
	}
	var hits []hit
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if lc == typed {
			continue
		}
		d := distance(typed, lc)
		if d <= maxDistance(typed) || strings.HasPrefix(lc, typed) {
			hits = append(hits, hit{c, d})
		}
	}
	slices.SortStableFunc(hits, func(a, b hit) int { return a.d - b.d })
	out := make([]string, 0, len(hits))
	for _, h := range hits {
		if !slices.Contains(out, h.name) {
			out = append(out, h.name)
		}
	}
	return out
}

// Hint is "; did you mean a?" or "; did you mean a or b?" for the
// candidates Closest finds, or "" when none is close.
func Hint(typed string, candidates []string) string {
	s := Closest(typed, candidates)
	if len(s) == 0 {
		return ""
	}
	return "; did you mean " + strings.Join(s, " or ") + "?"
}

// distance is the optimal string alignment distance of a and b:
// Levenshtein plus the transposition of two neighbours as one edit, the
// commonest typo. In bytes: the names here are ASCII.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
