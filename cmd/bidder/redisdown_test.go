package main

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/marketplace/sandbox"
)

// TestBinaryRedisDownAndBack: a worker started before Redis is up waits
// (not ready) instead of exiting; when Redis dies under it, it keeps
// running, reports not ready and places no bid; when Redis is back (from
// its AOF), it becomes ready and bidding goes on, with no duplicate.
func TestBinaryRedisDownAndBack(t *testing.T) {
	const token = "down-token-9c2"
	rs := redistest.Start(t, redistest.WithAppendOnly("always"))
	rs.Kill() // not up yet when bidder starts

	scfg := sandbox.DefaultServerConfig()
	scfg.Tokens = []string{token}
	scfg.Idempotency, scfg.Duplicates = sandbox.IdempotencyOff, sandbox.DuplicatesAccept
	scfg.Postings, scfg.Rate = 10, 20
	ms, err := sandbox.NewServer(scfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ms)
	t.Cleanup(func() { hs.Close(); _ = ms.Close() })
	stopGen := make(chan struct{})
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		for {
			select {
			case <-stopGen:
				return
			case <-time.After(50 * time.Millisecond):
				ms.Publish(1)
			}
		}
	}()

	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "bidder.yaml", fmt.Sprintf(`
http: {addr: "127.0.0.1:0"}
lock: {ttl: 2s}
worker: {concurrency: 4, shutdown_timeout: 5s, settle_delay: 2s, poll_interval: 100ms}
marketplaces:
  - id: down
    adapter: sandbox
    base_url: %s
    token_env: MP_TOKEN
    request_timeout: 1s
    scan: {schedule: "@every 1s", page_size: 50, requests_per_second: 50}
    rules:
      amount:
        fixed: {strategy: fixed, amount: 100}
        hourly: {strategy: fixed, amount: 30}
      proposal: {template: "I can do {{.Title}}."}
`, hs.URL))
	env := []string{"REDIS_URL=redis://" + rs.Addr() + "/0", "MP_TOKEN=" + token}
	p := start(t, dir, env, "run", "--config", cfgPath)
	base := p.baseURL()
	ready := func() int { code, _ := get(t, base+"/readyz", "", ""); return code }

	// Redis down at start: alive, not ready, not exited.
	wait.Until(t, 10*time.Second, "not ready while Redis is down", func() bool { return ready() == 503 })
	if code, _ := get(t, base+"/healthz", "", ""); code != 200 {
		t.Fatalf("healthz %d while waiting for Redis", code)
	}
	rs.Restart()
	wait.Until(t, 30*time.Second, "ready once Redis is up", func() bool { return ready() == 200 })
	wait.Until(t, 30*time.Second, "first bids", func() bool { return ms.Stats().Bids >= 5 })

	// Redis dies under a running process.
	rs.Kill()
	wait.Until(t, 15*time.Second, "not ready after Redis died", func() bool { return ready() == 503 })
	// Bids in flight when Redis died may still land; after that, none.
	time.Sleep(3 * time.Second) // let in-flight requests (1s timeout) finish: this is the observation window, not synchronisation
	frozen := ms.Stats().Bids
	time.Sleep(2 * time.Second)
	if n := ms.Stats().Bids; n != frozen {
		t.Fatalf("bids went from %d to %d with Redis down: not failing closed", frozen, n)
	}
	select {
	case <-p.done:
		t.Fatalf("bidder exited (%d) when Redis died", p.code)
	default:
	}

	// Back from its AOF: ready again, bidding resumes.
	rs.Restart()
	wait.Until(t, 60*time.Second, "ready again", func() bool { return ready() == 200 })
	wait.Until(t, 60*time.Second, "bidding resumes", func() bool { return ms.Stats().Bids > frozen })
	close(stopGen)
	<-genDone
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if st := ms.Stats(); st.DuplicateBids != 0 || st.PostingsWithMultipleBids != 0 {
		t.Fatalf("duplicates across Redis outages: %+v", st)
	}
	if strings.Contains(p.stderr.String(), token) {
		t.Fatal("token in the log")
	}
}
