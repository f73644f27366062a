package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bidder/bidder/internal/suggest"
)

// decode reads doc strictly onto cfg. yaml.v3 reports problems by line
// number only; operators think in key paths, so each message is mapped back
// to the key at that line.
func decode(doc []byte, cfg *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return &Error{Problem: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
	}
	if len(root.Content) == 0 {
		return nil // empty file: defaults
	}
	if top := root.Content[0]; top.Kind != yaml.MappingNode {
		return &Error{Problem: fmt.Sprintf("line %d: want a mapping of sections (redis:, http:, ...) at the top level", top.Line)}
	}
	idx := pathIndex{}
	idx.add(root.Content[0], "")

	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	first := idx.explain(msgs[0])
	if len(msgs) > 1 {
		first.Problem += fmt.Sprintf(" (and %d more problem(s))", len(msgs)-1)
	}
	first.Err = err
	return first
}

type pathEntry struct {
	path  string
	key   string // the mapping key, "" for a sequence item
	value *yaml.Node
}

// pathIndex maps a line number to the key paths of nodes on that line.
type pathIndex map[int][]pathEntry

func (idx pathIndex) add(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			idx[k.Line] = append(idx[k.Line], pathEntry{p, k.Value, v})
			if v.Line != k.Line {
				idx[v.Line] = append(idx[v.Line], pathEntry{p, "", v})
			}
			idx.add(v, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			idx[c.Line] = append(idx[c.Line], pathEntry{p, "", c})
			idx.add(c, p)
		}
	}
}

// removedKeys are keys earlier versions took, with why they are gone: a
// config that still sets one is told so, not merely that it is unknown.
var removedKeys = map[string]string{
	"lock.fence_retention": "fence counters are shared per Redis node or Cluster slot and never expire (docs/redis.md)",
	"lock.wait":            "a bid task whose posting another worker holds is retried after a short delay, without waiting",
}

var (
	lineRe     = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownRe  = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	mismatchRe = regexp.MustCompile("^cannot unmarshal !!(\\w+) (?:`(.*)` )?into (.+)$")
)

// explain turns one yaml.v3 message into an Error naming the key path.
func (idx pathIndex) explain(msg string) *Error {
	m := lineRe.FindStringSubmatch(msg)
	if m == nil {
		return &Error{Problem: msg}
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	entries := idx[line]

	if u := unknownRe.FindStringSubmatch(rest); u != nil {
		hint := suggest.Hint(u[1], fieldNames(u[2]))
		for _, e := range entries {
			if e.key == u[1] {
				if why, ok := removedKeys[e.path]; ok {
					return &Error{Key: e.path, Problem: "no longer used: " + why + "; remove it"}
				}
				return &Error{Key: e.path, Problem: "unknown key" + hint}
			}
		}
		return &Error{Problem: fmt.Sprintf("line %d: unknown key %q%s", line, u[1], hint)}
	}

	// The deepest node on the line is the one whose value failed; with
	// several scalars on one line (flow style) prefer the one quoted.
	var best, quoted *pathEntry
	mm := mismatchRe.FindStringSubmatch(rest)
	for i := range entries {
		e := &entries[i]
		if e.value.Line != line {
			continue
		}
		best = e
		if mm != nil && mm[2] != "" && e.value.Kind == yaml.ScalarNode && e.value.Value == mm[2] {
			quoted = e
		}
	}
	if quoted != nil {
		best = quoted
	}
	problem := rest
	if mm != nil {
		problem = fmt.Sprintf("want %s, got %s", describeType(mm[3]), describeTag(mm[1], mm[2]))
	}
	// Messages from custom unmarshalers (durations) carry their own line.
	problem = strings.TrimPrefix(problem, "line "+m[1]+": ")
	if best == nil {
		return &Error{Problem: fmt.Sprintf("line %d: %s", line, problem)}
	}
	return &Error{Key: best.path, Problem: problem}
}

func describeType(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.Contains(t, "."):
		return "a mapping"
	}
	return t
}

func describeTag(tag, value string) string {
	switch tag {
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	}
	if value != "" {
		return strconv.Quote(value)
	}
	return "!!" + tag
}
