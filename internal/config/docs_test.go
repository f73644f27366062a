package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocsListEveryKey: docs/configuration.md's key table (and docs/rules.md's
// for the rules: section) lists every key the decoder accepts, once, and no
// key it rejects. Keys come from the Go types (Keys), so a field added
// without a line in the docs fails here, naming it.
func TestDocsListEveryKey(t *testing.T) {
	documented := map[string]string{} // key -> where
	var problems []string
	add := func(file, prefix string) {
		keys, dups, err := docKeys(filepath.Join("..", "..", "docs", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dups {
			problems = append(problems, fmt.Sprintf("%s lists %s more than once", file, d))
		}
		for _, k := range keys {
			documented[prefix+k] = file
		}
	}
	add("configuration.md", "")
	add("rules.md", "marketplaces[].") // rules.md writes rules.x for marketplaces[].rules.x

	all := map[string]bool{}
	for _, k := range Keys() {
		all[k.Path] = true
		if k.Leaf {
			if _, ok := documented[k.Path]; !ok {
				problems = append(problems, "missing from the docs: "+k.Path)
			}
		}
	}
	for k, file := range documented {
		if !all[k] {
			problems = append(problems, fmt.Sprintf("%s lists %s, which is not a config key", file, k))
		}
	}
	slices.Sort(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

var backticked = regexp.MustCompile("`([^`]+)`")

// docKeys reads the key column of the table under "## Keys". A cell may
// name several keys: "`redis.host`, `.port`, `db`" (a name without a dot,
// or starting with one, is a sibling of the first) and
// "`amount.{fixed,hourly}.strategy`" (both).
func docKeys(path string) (keys, dups []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	_, section, ok := strings.Cut(string(b), "\n## Keys\n")
	if !ok {
		return nil, nil, fmt.Errorf("%s: no \"## Keys\" section", path)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	seen := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " | ")
		var first string
		for i, m := range backticked.FindAllStringSubmatch(cell, -1) {
			name := m[1]
			switch {
			case i == 0:
				first = name
			case strings.HasPrefix(name, "."):
				name = parentOf(first) + name
			case !strings.Contains(name, "."):
				name = parentOf(first) + "." + name
			}
			for _, k := range expandBraces(name) {
				if seen[k] {
					dups = append(dups, k)
				}
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil, nil, fmt.Errorf("%s: no keys in the \"## Keys\" table", path)
	}
	return keys, dups, nil
}

func parentOf(path string) string {
	if i := strings.LastIndex(path, "."); i >= 0 {
		return path[:i]
	}
	return ""
}

func expandBraces(s string) []string {
	open := strings.Index(s, "{")
	end := strings.Index(s, "}")
	if open < 0 || end < open {
		return []string{s}
	}
	var out []string
	for _, alt := range strings.Split(s[open+1:end], ",") {
		out = append(out, expandBraces(s[:open]+alt+s[end+1:])...)
	}
	return out
}

func TestDocKeysParsing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.md")
	doc := "# x\n\n## Keys\n\n| key | default |\n| --- | --- |\n" +
		"| `redis.host`, `redis.port`, `.db` | x |\n" +
		"| `a.{b,c}.d` / `e` | y |\n" +
		"| `redis.host` | again |\n" +
		"\n## Next\n\n| `not.a.key` | z |\n"
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, dups, err := docKeys(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"redis.host", "redis.port", "redis.db", "a.b.d", "a.c.d", "a.b.e", "a.c.e", "redis.host"}
	if !slices.Equal(keys, want) || !slices.Equal(dups, []string{"redis.host"}) {
		t.Fatalf("keys %v dups %v", keys, dups)
	}
}
