package suggest

import (
	"slices"
	"testing"
)

func TestClosest(t *testing.T) {
	keys := []string{"url", "host", "port", "db", "username", "hash_tags", "pool_size"}
	for _, c := range []struct {
		typed string
		want  []string
	}{
		{"hots", []string{"host"}},      // two neighbours swapped: one edit
		{"HOST", nil},                   // the name itself is no suggestion
		{"prot", []string{"port"}},      //
		{"user", []string{"username"}},  // a prefix, however far
		{"pool", []string{"pool_size"}}, // "port" is two edits: too far for four letters
		{"hash_tag", []string{"hash_tags"}},
		{"hsah_tgas", []string{"hash_tags"}}, // two edits in a long name
		{"xyzzy", nil},
		{"", nil},
	} {
		if got := Closest(c.typed, keys); !slices.Equal(got, c.want) {
			t.Errorf("Closest(%q) = %v, want %v", c.typed, got, c.want)
		}
	}
	if got := Closest("sandbx", []string{"scan-once", "sandbox", "scanner"}); !slices.Equal(got, []string{"sandbox"}) {
		t.Errorf("got %v", got)
	}
	if got := Closest("abcd", []string{"abcde", "abce", "abc", "xbcd"}); !slices.Equal(got, []string{"abcde", "abce", "abc", "xbcd"}) {
		t.Errorf("order among equals: got %v", got)
	}
	if got := Closest("abcd", []string{"abdcx", "abcx"}); !slices.Equal(got, []string{"abcx"}) {
		t.Errorf("nearest first: got %v", got)
	}
}

func TestHint(t *testing.T) {
	if got := Hint("hots", []string{"host", "hot"}); got != "; did you mean host or hot?" {
		t.Fatal(got)
	}
	if got := Hint("zzz", []string{"host"}); got != "" {
		t.Fatal(got)
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"hots", "host", 1}, {"host", "port", 2}, {"ca", "abc", 3}} {
		if got := distance(c.a, c.b); got != c.d {
			t.Errorf("distance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}
