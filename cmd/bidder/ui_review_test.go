package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/marketplace/sandbox"
)

// TestReviewOnThePageInBrowser (issue 16, item 2): with review on for
// every posting, a `bidder run` against a real Redis and the sandbox fills
// the review queue; an operator in Chromium, JavaScript off, edits one
// posting's amount and clicks Approve, and that bid is placed, as edited;
// Reject ends another for good; a second Approve gives the same outcome.
func TestReviewOnThePageInBrowser(t *testing.T) {
	bin := chromium(t)
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	scfg := sandbox.DefaultServerConfig()
	scfg.Tokens, scfg.Postings = []string{uiMPToken}, 3
	ms, err := sandbox.NewServer(scfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ms)
	t.Cleanup(func() { hs.Close(); _ = ms.Close() })
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "bidder.yaml", fmt.Sprintf(`
http:
  addr: 127.0.0.1:0
  monitoring: {basic_auth: {username: ops, password_env: UI_PW}}
  actions: {enabled: true}
marketplaces:
  - id: rv
    adapter: sandbox
    base_url: %s
    token_env: TOK
    scan: {schedule: "@every 1s"}
    rules:
      amount:
        fixed: {strategy: range_point, point: 0}
        hourly: {strategy: range_point, point: 0}
      proposal: {template: "I can do {{.Title}}."}
      review: {all: true, deadline: 1h}
`, hs.URL))
	p := start(t, dir, []string{"REDIS_URL=redis://" + rs.Addr() + "/0", "TOK=" + uiMPToken, "UI_PW=" + uiPassword}, "run", "--config", cfgPath)
	base := p.baseURL()
	led := ledger.New(rdb)
	wait.Until(t, 30*time.Second,

		"three postings in review", func() bool {
			q, err := led.Reviews(ctx, "rv", 0)
			return err == nil && len(q) == 3
		})

	queue, _ := led.Reviews(ctx, "rv", 0)
	first, second := queue[0].PostingID, queue[1].PostingID
	rec, _ := led.Get(ctx, "rv", first)
	edited := rec.Amount + 7

	b := newBrowser(t, bin, "--blink-settings=scriptEnabled=false")
	b.auth("ops", uiPassword)
	b.open(base + "/")
	if row := b.html(`tr[data-review="` + first + `"]`); !strings.Contains(row, "I can do") {
		t.Fatalf("the review row shows no proposal: %s", row)
	}
	// Type the amount as a user would fill the field; no script runs.
	b.call("DOM.setAttributeValue", map[string]any{"nodeId": b.node(`input[data-amount="` + first + `"]`), "name": "value", "value": fmt.Sprint(edited)}, nil)
	b.click(`button[data-approve="` + first + `"]`)
	if res := b.html("#result"); !strings.Contains(res, "approved rv:"+first) {
		t.Fatalf("after Approve the browser shows %s", res)
	}
	wait.Until(t, 30*time.Second,

		"the approved bid placed", func() bool {
			rec, err := led.Get(ctx, "rv", first)
			return err == nil && rec.State == ledger.StatePlaced
		})

	rec, _ = led.Get(ctx, "rv", first)
	if rec.Amount != edited {
		t.Fatalf("placed %v, want the edited %v", rec.Amount, edited)
	}
	var bids int
	for _, o := range ms.BidOutcomes() {
		if o.PostingID == first {
			bids++
		}
	}
	if bids != 1 {
		t.Fatalf("the sandbox holds %d bids on %s, want 1", bids, first)
	}

	b.open(base + "/")
	b.click(`button[data-reject="` + second + `"]`)
	if res := b.html("#result"); !strings.Contains(res, "rejected rv:"+second) {
		t.Fatalf("after Reject the browser shows %s", res)
	}
	if rec, _ := led.Get(ctx, "rv", second); rec.State != ledger.StateRejected {
		t.Fatalf("%s after Reject: %+v", second, rec)
	}
	// A second Approve from a page loaded before the first (another tab,
	// another operator): the same outcome, nothing more sent.
	req, _ := http.NewRequest(http.MethodPost, base+"/actions/review", strings.NewReader("marketplace=rv&posting="+first+"&action=approve"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.SetBasicAuth("ops", uiPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(again), "approved already") {
		t.Fatalf("a second approve: %d %s", resp.StatusCode, again)
	}
	wait.Until(t, 30*time.Second,

		"the placed bid among the latest decisions", func() bool {
			_, page := get(t, base+"/", "", "")
			return strings.Contains(page, `data-posting="`+first+`" data-state="placed"`)
		})

	if n := len(ms.BidOutcomes()); n != 1 {
		t.Fatalf("the sandbox holds %d bids, want 1", n)
	}
	for _, secret := range []string{uiMPToken, uiPassword} {
		if _, page := get(t, base+"/", "", ""); strings.Contains(page, secret) {
			t.Errorf("the page holds the secret %q", secret)
		}
	}
}
