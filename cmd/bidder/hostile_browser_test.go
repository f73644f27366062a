package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/worker"
)

// TestHostilePagesInBrowser runs the two browser attacks on the listener in
// a real headless Chromium, against `bidder run` with the asynq web UI
// writable and, as on loopback by default, without basic auth:
//
//   - a page on another site auto-submits a form that pauses the bids queue
//     (cross-site request forgery);
//   - a page on a name rebound to 127.0.0.1 reads the status page (DNS
//     rebinding; Chromium's --host-resolver-rules plays the attacker's DNS).
func TestHostilePagesInBrowser(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	emb, err := os.ReadFile("../../configs/embedded.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(emb), "addr: 127.0.0.1:8080", "addr: 127.0.0.1:0\n  monitoring: {read_only: false}", 1)
	writeFile(t, dir, "bidder.yaml", cfg)
	p := start(t, dir, nil, "run")
	base := p.baseURL()
	queue := worker.MarketplaceQueue("sandbox") // queue_per_marketplace is the default
	bidsPaused := func() (paused, exists bool) {
		code, body := get(t, base+"/monitoring/api/queues", "", "")
		var qs struct {
			Queues []struct {
				Queue  string `json:"queue"`
				Paused bool   `json:"paused"`
			} `json:"queues"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &qs) != nil {
			t.Fatalf("queue list: %d %.300s", code, body)
		}
		for _, q := range qs.Queues {
			if q.Queue == queue {
				return q.Paused, true
			}
		}
		return false, false
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, exists := bidsPaused(); !exists; _, exists = bidsPaused() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s queue within 30s", queue)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The attacker's page is on localhost, another site than 127.0.0.1.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form method="POST" action="%s/monitoring/api/queues/%s:pause"></form>
<script>document.forms[0].submit()</script>`, base, queue)
	}))
	defer evil.Close()
	// --timeout, not --virtual-time-budget: a 204 answer to the form leaves
	// the navigation pending, and virtual time then never runs out.
	dom := headless(t, bin, "--timeout=5000", "--dump-dom", strings.Replace(evil.URL, "127.0.0.1", "localhost", 1))
	if paused, _ := bidsPaused(); paused {
		t.Fatal("a form on another site paused the bids queue through the operator's browser")
	}
	// The form did reach bidder, and was refused.
	if !strings.Contains(string(dom), "cross-origin request refused") {
		t.Fatalf("the browser did not show bidder's refusal:\n%.2000s", dom)
	}

	port := base[strings.LastIndexByte(base, ':')+1:]
	dom = headless(t, bin, "--timeout=5000", "--host-resolver-rules=MAP rebind.test 127.0.0.1", "--dump-dom", "http://rebind.test:"+port+"/")
	if strings.Contains(string(dom), "miniredis") || strings.Contains(string(dom), "Ledger by marketplace") {
		t.Fatalf("a rebound name read the status page:\n%.2000s", dom)
	}
	if !strings.Contains(string(dom), "misdirected request") {
		t.Fatalf("the browser did not show bidder's refusal:\n%.2000s", dom)
	}
	// The UI still works from its own origin.
	if code, body := get(t, base+"/", "", ""); code != http.StatusOK || !strings.Contains(body, "miniredis") {
		t.Fatalf("status page from 127.0.0.1: %d", code)
	}
}
