package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/config"
)

// TestReadmeCommandsWorkOnOneHost (issue 15, item 4): the README's
// quick-start commands name commands and flags that exist, every daemon
// among them passes its start-up checks with the config and environment
// the README gives, and no two processes listen on the same address, so
// they run together on one host as written.
func TestReadmeCommandsWorkOnOneHost(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, quick, ok := strings.Cut(string(b), "\n## Quick start\n")
	if !ok {
		t.Fatal("README has no Quick start section")
	}
	quick, _, _ = strings.Cut(quick, "\n## ")

	env := map[string]string{}
	listeners := map[string]string{} // address -> command line
	root := newRoot()
	n, daemons := 0, 0
	for _, line := range codeLines(quick) {
		if rest, ok := strings.CutPrefix(line, "export "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			continue
		}
		args, ok := exampleArgs(line)
		if !ok {
			continue
		}
		n++
		if err := parses(root, args); err != nil {
			t.Errorf("README: %q: %v", line, err)
			continue
		}
		cmd, _, _ := root.Find(args)
		addr := ""
		if cmd.Name() == "sandbox" {
			addr, _ = cmd.Flags().GetString("listen")
		}
		if cmd.Flags().Lookup("config") != nil {
			path, _ := cmd.Flags().GetString("config")
			httpAddr, _ := cmd.Flags().GetString("http-addr")
			cfg, err := loadAt(path, httpAddr, env)
			roles, daemon := app.DaemonRoles(cmd.Name())
			if daemon == nil {
				daemons++
				addr = cfg.HTTP.Addr
			} else if cmd.Name() == "scan-once" {
				roles, daemon = app.Roles{Name: "scan-once"}, nil
			}
			if err == nil && daemon == nil {
				err = roles.Check(cfg)
			}
			if err != nil {
				t.Errorf("README: %q would not start: %v", line, err)
				continue
			}
		}
		if addr == "" {
			continue
		}
		if other, dup := listeners[addr]; dup {
			t.Errorf("README: %q and %q both listen on %s", other, line, addr)
		}
		listeners[addr] = line
	}
	if n < 8 || daemons < 3 {
		t.Fatalf("found %d bidder command(s), %d daemon(s) in the README's quick start", n, daemons)
	}
}

// codeLines returns the indented code lines of a Markdown text, with
// backslash continuations joined.
func codeLines(md string) []string {
	var out []string
	cont := false
	for _, l := range strings.Split(md, "\n") {
		code, ok := strings.CutPrefix(l, "    ")
		if !ok {
			cont = false
			continue
		}
		if cont {
			out[len(out)-1] += " " + strings.TrimSpace(code)
		} else {
			out = append(out, code)
		}
		cont = strings.HasSuffix(strings.TrimSpace(code), "\\")
		if cont {
			out[len(out)-1] = strings.TrimSuffix(strings.TrimSpace(out[len(out)-1]), "\\")
		}
	}
	return out
}

// loadAt loads the config a README line names, from the repository root,
// the way the process would: the README's environment, the line's flags,
// and (go run in the checkout) the default search paths.
func loadAt(path, httpAddr string, env map[string]string) (config.Config, error) {
	reg, err := app.Adapters()
	if err != nil {
		return config.Config{}, err
	}
	o := config.Options{
		Adapters:  reg.Names(),
		Flags:     config.Flags{HTTPAddr: httpAddr},
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		ReadFile:  func(p string) ([]byte, error) { return os.ReadFile(filepath.Join("..", "..", p)) },
	}
	if path != "" {
		o.Path = path
	}
	return config.Load(o)
}
