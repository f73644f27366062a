package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb syncBuffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestDidYouMean (issue 15, item 4): a mistyped subcommand at any level, or
// a mistyped flag, is answered with what was probably meant.
func TestDidYouMean(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sandbx"}, `unknown command "sandbx" for "bidder"; did you mean sandbox?`},
		{[]string{"lokcs"}, "did you mean locks?"},
		{[]string{"ledger", "gt"}, `unknown command "gt" for "bidder ledger"; did you mean get?`},
		{[]string{"config", "vaildate"}, `unknown command "vaildate" for "bidder config"; did you mean validate?`},
		{[]string{"locks", "lsit"}, "did you mean list?"},
		{[]string{"ledger", "get", "--marketplce", "x"}, "unknown flag: --marketplce; did you mean --marketplace?"},
		{[]string{"worker", "--http-adr", "x"}, "did you mean --http-addr?"},
		{[]string{"run", "--confg", "x"}, "did you mean --config?"},
		{[]string{"--verison"}, "did you mean --version?"},
	} {
		code, _, stderr := runCLI(c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("bidder %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
	// Nothing close: no guess, still the usage hint.
	if code, _, stderr := runCLI("ledger", "zzzzzz"); code != exitUsage || strings.Contains(stderr, "did you mean") || !strings.Contains(stderr, "--help") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestVersionFlag: bidder --version prints what bidder version prints:
// version, commit, commit time (when built from git) and Go version.
func TestVersionFlag(t *testing.T) {
	code, flag, _ := runCLI("--version")
	vcode, sub, _ := runCLI("version")
	if code != 0 || vcode != 0 || flag != sub {
		t.Fatalf("--version: exit %d %q; version: exit %d %q", code, flag, vcode, sub)
	}
	for _, want := range []string{"bidder ", "\ncommit:", "\ngo:          go1."} {
		if !strings.Contains(sub, want) {
			t.Errorf("version output lacks %q:\n%s", want, sub)
		}
	}
}

// TestRootHelpHasExamples: bidder --help shows examples, with the adapters
// that exist.
func TestRootHelpHasExamples(t *testing.T) {
	code, out, _ := runCLI("--help")
	if code != 0 || !strings.Contains(out, "Examples:") {
		t.Fatalf("exit %d, no examples:\n%s", code, out)
	}
	for _, want := range []string{"bidder run", "bidder worker", "bidder sandbox", "adapter sandbox", "adapter freelancer"} {
		if !strings.Contains(out, want) {
			t.Errorf("root help lacks %q", want)
		}
	}
}

// TestExamplesParse: every example line of every command names commands
// and flags that exist, so --help cannot advertise what fails.
func TestExamplesParse(t *testing.T) {
	root := newRoot()
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		for _, line := range strings.Split(c.Example, "\n") {
			args, ok := exampleArgs(line)
			if !ok {
				continue
			}
			n++
			if err := parses(root, args); err != nil {
				t.Errorf("%s example %q: %v", c.CommandPath(), strings.TrimSpace(line), err)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 20 {
		t.Fatalf("only %d example lines found", n)
	}
}

// newRoot builds the command tree as run does, without running it.
func newRoot() *cobra.Command {
	var out, errb syncBuffer
	return buildRoot(env{stdout: &out, stderr: &errb})
}

// exampleArgs reads "VAR=x bidder cmd --flag v   # comment" as bidder's
// arguments; other lines (open, curl, export) are not bidder's.
func exampleArgs(line string) ([]string, bool) {
	line, _, _ = strings.Cut(line, "#")
	line, _, _ = strings.Cut(line, "&&")
	line, _, _ = strings.Cut(line, "|")
	line, _, _ = strings.Cut(line, ">") // output redirected
	f := shellWords(strings.ReplaceAll(line, "\\", ""))
	for len(f) > 0 && strings.Contains(f[0], "=") {
		f = f[1:]
	}
	if len(f) > 0 && f[len(f)-1] == "&" { // started in the background
		f = f[:len(f)-1]
	}
	switch {
	case len(f) > 0 && f[0] == "bidder":
		return f[1:], true
	case len(f) > 2 && f[0] == "go" && f[1] == "run" && f[2] == "./cmd/bidder":
		return f[3:], true
	}
	return nil, false
}

// shellWords splits a line into words as a shell would for the examples'
// needs: blanks separate, single or double quotes hold a word together.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	in, quote := false, rune(0)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// parses resolves args to a command and parses its flags (quotes are
// dropped: example values are single words or quoted words).
func parses(root *cobra.Command, args []string) error {
	for i, a := range args {
		args[i] = strings.Trim(a, `'"`)
	}
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if err := cmd.ParseFlags(rest); err != nil && !errors.Is(err, pflag.ErrHelp) {
		return err
	}
	if cmd.Args != nil {
		return cmd.Args(cmd, cmd.Flags().Args())
	}
	return nil
}

// TestMarketplaceFilterChecked: --marketplace ends up in a SCAN pattern,
// where "*" would match every marketplace; it is checked like every ID.
func TestMarketplaceFilterChecked(t *testing.T) {
	for _, args := range [][]string{
		{"ledger", "stats", "--marketplace", "*"},
		{"locks", "list", "--marketplace", "Sandbox"},
		{"ledger", "get", "--marketplace", "a*", "--posting", "p1"},
	} {
		code, _, stderr := runCLI(args...)
		if code != exitUsage || !strings.Contains(stderr, "invalid id: marketplace") {
			t.Errorf("bidder %v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
