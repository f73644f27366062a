package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
)

// oneLine fails unless the process exited with code and wrote exactly one
// stderr line containing each of want.
func oneLine(t *testing.T, p *proc, code int, want ...string) {
	t.Helper()
	got := p.wait(15 * time.Second)
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	ok := got == code && len(lines) == 1
	for _, w := range want {
		ok = ok && strings.Contains(lines[0], w)
	}
	if !ok {
		t.Fatalf("bidder %v: exit %d, stderr:\n%s\nwant exit %d and one line containing %q", p.cmd.Args[1:], got, p.stderr.String(), code, want)
	}
}

// TestBinaryDemoNeverMeetsRealRedis (issue 13, item 8): the built-in demo
// config and its in-process sandbox run only on the in-process Redis. A
// process with a real Redis and no config file, or a config with an
// in-process sandbox and a real Redis, refuses to start in one line that
// says what to pass; the Redis stays empty. The split roles refuse the
// in-process Redis, which nothing else would share.
func TestBinaryDemoNeverMeetsRealRedis(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	dir := t.TempDir() // no bidder.yaml here
	realRedis := []string{"REDIS_URL=redis://" + rs.Addr() + "/0"}
	const free = "--http-addr=127.0.0.1:0"
	roles := [][]string{{"run", free}, {"worker", free}, {"scanner", free}, {"monitor", free},
		{"scan-once", "--marketplace", "sandbox"}, {"config", "validate"}}
	for _, args := range roles {
		t.Run("no config, REDIS_URL: "+args[0], func(t *testing.T) {
			p := start(t, dir, realRedis, args...)
			oneLine(t, p, exitUsage, "--config FILE", "configs/single.yaml", "unset REDIS_URL")
		})
	}
	t.Run("no config, REDIS_HOST", func(t *testing.T) {
		host, port, _ := net.SplitHostPort(rs.Addr())
		p := start(t, dir, []string{"REDIS_HOST=" + host, "REDIS_PORT=" + port}, "worker", "--http-addr", "127.0.0.1:0")
		oneLine(t, p, exitUsage, "--config FILE")
	})
	t.Run("embedded sandbox with a real Redis", func(t *testing.T) {
		// The demo config itself, named explicitly.
		demo, err := filepath.Abs("../../configs/embedded.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, role := range []string{"run", "worker", "scanner"} {
			p := start(t, dir, realRedis, role, "--config", demo, "--http-addr", "127.0.0.1:0")
			oneLine(t, p, exitUsage, "config: marketplaces[0].embedded: ")
		}
	})
	for _, args := range roles[1:5] {
		t.Run("nothing configured: "+args[0], func(t *testing.T) {
			p := start(t, dir, nil, args...)
			oneLine(t, p, exitUsage, "config: redis: not configured", "bidder run")
		})
	}
	if n, err := rdb.DBSize(context.Background()).Result(); err != nil || n != 0 {
		keys, _ := rdb.Keys(context.Background(), "*").Result()
		t.Fatalf("the real Redis holds %d key(s) (%v): %v", n, err, keys)
	}
}

// TestBinarySIGHUP (issue 13, item 9): SIGHUP never kills a daemon role:
// the scheduler reloads, every other role logs and ignores it; SIGTERM
// still stops it cleanly.
func TestBinarySIGHUP(t *testing.T) {
	rs := redistest.Start(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "bidder.yaml", `
http: {addr: "127.0.0.1:0"}
worker: {shutdown_timeout: 2s, settle_delay: 2s}
marketplaces:
  - id: hup
    adapter: sandbox
    base_url: http://127.0.0.1:9
    token_env: MP_TOKEN
    request_timeout: 1s
    scan: {schedule: "@every 1h"}
    rules:
      amount: {fixed: {strategy: fixed, amount: 100}}
      proposal: {template: "hi"}
`)
	env := []string{"REDIS_URL=redis://" + rs.Addr() + "/0", "MP_TOKEN=t"}
	for _, c := range []struct {
		role, logged string
	}{
		{"run", "SIGHUP: reloading schedules"},
		{"scanner", "SIGHUP: reloading schedules"},
		{"worker", "SIGHUP: nothing to reload in this role; ignored"},
		{"monitor", "SIGHUP: nothing to reload in this role; ignored"},
	} {
		t.Run(c.role, func(t *testing.T) {
			p := start(t, dir, env, c.role, "--config", cfg)
			p.baseURL() // serving
			for i := 1; i <= 2; i++ {
				if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				wait.Until(t, 10*time.Second, fmt.Sprintf("log line %q #%d", c.logged, i), func() bool { return countMsg(p.stderr.String(), c.logged) >= i || exited(p) })

				if exited(p) {
					t.Fatalf("%s exited (%d) on SIGHUP", c.role, p.code)
				}
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.wait(20 * time.Second); code != 0 {
				t.Fatalf("exit %d after SIGTERM", code)
			}
		})
	}
}

func exited(p *proc) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// countMsg counts JSON log lines whose msg is msg.
func countMsg(log, msg string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		var e struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == msg {
			n++
		}
	}
	return n
}

// TestBinaryRedisDownOneLine (issue 15, item 3): an operator command with
// Redis down prints one clean line: go-redis' own log lines go through zap
// (debug), not straight to stderr before it.
func TestBinaryRedisDownOneLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now
	dir := t.TempDir()
	env := []string{"REDIS_URL=redis://:pw-9d1@" + dead + "/0"}
	for _, args := range [][]string{
		{"ledger", "get", "--marketplace", "sandbox", "--posting", "p-1"},
		{"ledger", "stats"},
		{"locks", "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			p := start(t, dir, env, args...)
			oneLine(t, p, exitFailure, "bidder: redis unavailable: redis://:xxxxx@"+dead+"/0")
			if strings.Contains(p.stderr.String(), "pw-9d1") {
				t.Fatal("password in the output")
			}
		})
	}
}

// TestBinaryVersion (issue 15, item 4): a binary built from a git checkout
// says which commit it is, when that commit was made and which Go built
// it, with nothing passed at build time; -X main.version names a release.
func TestBinaryVersion(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to stamp", err)
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !fi.IsDir() {
		// The go command looks for a .git directory; a worktree has a file.
		t.Skip("a git worktree: the go command stamps only checkouts with a .git directory")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "bidder")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7", "-o", bin, ".")
	// Explicit: a developer's go env may say -buildvcs=false.
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		s := string(out)
		for _, want := range []string{
			"bidder v9.8.7\n",
			"\ncommit:      " + strings.TrimSpace(string(head)),
			"\ncommit time: 20",
			"\ngo:          " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("bidder %v lacks %q:\n%s", args, want, s)
			}
		}
	}
}

// TestBinaryConfigValidateRunsStartupChecks (issue 15, item 4): config
// validate refuses what start-up refuses, in the same one line.
func TestBinaryConfigValidateRunsStartupChecks(t *testing.T) {
	dir := t.TempDir()
	noMarket := writeFile(t, dir, "monitor.yaml", "http: {addr: \"127.0.0.1:0\"}\n")
	withMarket := writeFile(t, dir, "single.yaml", minimalMarketplace)
	// A Redis URL that url.Parse takes but the client does not: the reason,
	// never the password. 127.0.0.1:9 is never dialled.
	badDB := []string{"REDIS_URL=redis://:hunter2-pw@127.0.0.1:9/abc", "TOK=x"}
	p := start(t, dir, badDB, "config", "validate", "--config", withMarket)
	oneLine(t, p, exitUsage, "bidder: config: redis.url: redis://:xxxxx@127.0.0.1:9/abc: invalid database number")
	if strings.Contains(p.stderr.String(), "hunter2") {
		t.Fatal("password in the message")
	}
	// The daemon says the same.
	p = start(t, dir, badDB, "worker", "--config", withMarket)
	oneLine(t, p, exitUsage, "bidder: config: redis.url: redis://:xxxxx@127.0.0.1:9/abc: invalid database number")

	real := []string{"REDIS_URL=redis://127.0.0.1:9/0", "TOK=x"}
	for _, role := range []string{"run", "worker", "scanner"} {
		p := start(t, dir, real, "config", "validate", "--config", noMarket, "--role", role)
		oneLine(t, p, exitUsage, "bidder: config: marketplaces: none configured; "+role+" needs at least one")
	}
	p = start(t, dir, real, "config", "validate", "--config", noMarket, "--role", "monitor")
	if code := p.wait(15 * time.Second); code != 0 || !strings.Contains(p.stdout.String(), "config OK for monitor") {
		t.Fatalf("monitor without marketplaces: exit %d\n%s%s", code, p.stdout.String(), p.stderr.String())
	}
	p = start(t, dir, real, "config", "validate", "--config", withMarket, "--role", "scaner")
	if code := p.wait(15 * time.Second); code != exitUsage || !strings.Contains(p.stderr.String(), `no daemon role "scaner"`) {
		t.Fatalf("--role scaner: exit %d\n%s", code, p.stderr.String())
	}
}

// TestBinarySummaryLines (issue 15, item 3): a worker logs one summary line
// per marketplace every log.summary_interval, with the decisions of the
// interval and the bid budget left.
func TestBinarySummaryLines(t *testing.T) {
	dir := t.TempDir()
	emb, err := os.ReadFile("../../configs/embedded.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(emb), "log:\n", "log:\n  summary_interval: 1s\n", 1)
	doc = strings.Replace(doc, "addr: 127.0.0.1:8080", "addr: 127.0.0.1:0", 1)
	writeFile(t, dir, "bidder.yaml", doc)
	p := start(t, dir, nil, "run")
	type line struct {
		Msg, Interval, Marketplace string
		Placed, Skipped, Failed    *int64
		BudgetHourLeft             *int64 `json:"budget_hour_left"`
	}
	var placed int64
	var last line
	wait.Until(t, 40*time.Second,

		"two summary lines and a placed bid", func() bool {
			placed = 0
			n := 0
			for _, s := range strings.Split(p.stderr.String(), "\n") {
				var l line
				if json.Unmarshal([]byte(s), &l) != nil || l.Msg != "summary" {
					continue
				}
				n++
				if l.Interval != "1s" || l.Marketplace != "sandbox" || l.Placed == nil || l.Skipped == nil || l.Failed == nil || l.BudgetHourLeft == nil {
					t.Fatalf("summary line lacks a field: %s", s)
				}
				placed += *l.Placed
				last = l
			}
			return n >= 2 && placed > 0
		})

	if *last.BudgetHourLeft < 0 || *last.BudgetHourLeft > 600 {
		t.Fatalf("budget_hour_left %d, per_hour is 600", *last.BudgetHourLeft)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
