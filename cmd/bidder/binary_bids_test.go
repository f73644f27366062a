package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/marketplace/sandbox"
)

var placedRe = regexp.MustCompile(`(?m)^bidder_bids_total\{marketplace="([^"]+)",outcome="placed"\} (\S+)$`)

func placed(metrics string) float64 {
	total := 0.0
	for _, m := range placedRe.FindAllStringSubmatch(metrics, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		total += v
	}
	return total
}

func TestBinaryEmbeddedRun(t *testing.T) {
	dir := t.TempDir()
	emb, err := os.ReadFile("../../configs/embedded.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(emb), "http:\n  addr: 127.0.0.1:8080\n",
		"http:\n  addr: 127.0.0.1:0\n  monitoring:\n    basic_auth: {username: ops, password_env: UI_PW}\n", 1)
	writeFile(t, dir, "bidder.yaml", doc) // found by the default search
	p := start(t, dir, []string{"UI_PW=ui-secret-pw"}, "run")
	base := p.baseURL()

	var metrics string
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, metrics = get(t, base+"/metrics", "", "")
		if placed(metrics) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bid placed within 30s; metrics:\n%s", grepLines(metrics, "bidder_"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, c := range []struct {
		path, user, pass string
		code             int
		body             string
	}{
		{"/healthz", "", "", 200, "ok"},
		{"/readyz", "", "", 200, "ready"},
		{"/metrics", "", "", 200, "asynq_queue_size"},
		{"/metrics", "", "", 200, "go_goroutines"},
		{"/", "", "", 200, `<tr data-marketplace="sandbox"><td class="l">sandbox</td>`},
		{"/monitoring/", "", "", 401, ""},
		{"/monitoring/", "ops", "wrong", 401, ""},
		{"/monitoring/", "ops", "ui-secret-pw", 200, "<html"},
	} {
		if code, body := get(t, base+c.path, c.user, c.pass); code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("GET %s (%q): %d, want %d with %q; body %.300q", c.path, c.user, code, c.code, c.body, body)
		}
	}
	if !strings.Contains(p.stderr.String(), "data is in memory only") {
		t.Error("the first lines do not say data is in memory only")
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if strings.Contains(p.stderr.String(), "ui-secret-pw") {
		t.Fatal("UI password in the log")
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBinaryWorkerAndScanner runs the roles as separate processes on real
// Redis against the strictest sandbox (keys ignored, duplicates accepted),
// stops a worker with SIGTERM mid-load, and checks every posting got exactly
// one bid and no lock was left behind.
func TestBinaryWorkerAndScanner(t *testing.T) {
	const (
		redisPW = "redis-pw-7f3a9c"
		token   = "mp-token-b41d22"
		n       = 60
	)
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	if err := rdb.ConfigSet(ctx, "requirepass", redisPW).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Options().Password = redisPW

	scfg := sandbox.DefaultServerConfig()
	scfg.Tokens = []string{token}
	scfg.Idempotency, scfg.Duplicates = sandbox.IdempotencyOff, sandbox.DuplicatesAccept
	scfg.Postings = n
	scfg.Latency, _ = sandbox.ParseLatency("20ms..60ms")
	ms, err := sandbox.NewServer(scfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ms)
	t.Cleanup(func() { hs.Close(); _ = ms.Close() })

	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "bidder.yaml", fmt.Sprintf(`
http: {addr: "127.0.0.1:0"}
lock: {ttl: 3s}
worker: {concurrency: 4, shutdown_timeout: 5s, settle_delay: 2s, poll_interval: 100ms}
marketplaces:
  - id: strict
    adapter: sandbox
    base_url: %s
    token_env: MP_TOKEN
    request_timeout: 1s
    scan: {schedule: "@every 1s", page_size: 20, requests_per_second: 50}
    rules:
      amount:
        fixed: {strategy: fixed, amount: 100}
        hourly: {strategy: fixed, amount: 30}
      proposal: {template: "I can do {{.Title}}."}
`, hs.URL))
	env := []string{"REDIS_URL=redis://" + rs.Addr() + "/0", "REDIS_PASSWORD=" + redisPW, "MP_TOKEN=" + token}

	// config print never shows the secrets.
	pr := start(t, dir, env, "config", "print", "--config", cfgPath)
	if code := pr.wait(10 * time.Second); code != 0 {
		t.Fatalf("config print: exit %d", code)
	}
	if out := pr.stdout.String(); strings.Contains(out, redisPW) || strings.Contains(out, token) || !strings.Contains(out, "token_env: MP_TOKEN") {
		t.Fatalf("config print:\n%s", out)
	}

	scan := start(t, dir, env, "scanner", "--config", cfgPath)
	w1 := start(t, dir, env, "worker", "--config", cfgPath)
	w2 := start(t, dir, env, "worker", "--config", cfgPath)
	w1.baseURL()

	// SIGTERM one worker while bids are in flight.
	wait.Until(t, 20*time.Second, "first bids", func() bool { return ms.Stats().Bids >= 5 })
	_ = w1.cmd.Process.Signal(syscall.SIGTERM)
	if code := w1.wait(20 * time.Second); code != 0 {
		t.Fatalf("worker exit %d after SIGTERM", code)
	}
	wait.Until(t, 40*time.Second, fmt.Sprintf("%d bids", n), func() bool { return ms.Stats().Bids >= n })
	for _, p := range []*proc{scan, w2} {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(20 * time.Second); code != 0 {
			t.Fatalf("exit %d after SIGTERM", code)
		}
	}
	st := ms.Stats()
	if st.DuplicateBids != 0 || st.PostingsWithMultipleBids != 0 || st.Bids != n {
		t.Fatalf("sandbox stats %+v: want %d bids, no duplicates", st, n)
	}
	if keys, err := rdb.Keys(ctx, "bid_lock:*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("locks left after shutdown: %v %v", keys, err)
	}
	for _, p := range []*proc{pr, scan, w1, w2} {
		if s := p.stderr.String(); strings.Contains(s, redisPW) || strings.Contains(s, token) {
			t.Fatalf("a secret reached the log of %v:\n%s", p.cmd.Args, s)
		}
	}

	// Operator commands against the same Redis.
	ls := start(t, dir, env, "ledger", "stats", "--config", cfgPath)
	if code := ls.wait(10 * time.Second); code != 0 || !regexp.MustCompile(`(?m)^placed\s+`+strconv.Itoa(n)+`$`).MatchString(ls.stdout.String()) {
		t.Fatalf("ledger stats: exit %d\n%s", code, ls.stdout.String())
	}
	ll := start(t, dir, env, "locks", "list", "--config", cfgPath)
	if code := ll.wait(10 * time.Second); code != 0 || !strings.Contains(ll.stdout.String(), "0 lock(s)") {
		t.Fatalf("locks list: exit %d\n%s", code, ll.stdout.String())
	}
}
