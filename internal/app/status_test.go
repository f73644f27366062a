package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/history"
	"github.com/bidder/bidder/internal/httpserver"
	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/scanner"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// Recognisable secrets: none may appear on the page.
const (
	redisPW = "redis-pw-7c1e9f"
	mpToken = "mp-token-3b8d2a"
	uiPW    = "ui-pw-51f0aa"
)

// TestStatusPageFromSharedState: a monitor (no worker, no scanner) serves
// the page from what other instances left in a real Redis: history,
// parked and undecided postings, budget and its waits, the last scan,
// queues and a live worker. With actions on, resuming through the page
// puts the postings back (an intent stays one) and enqueues their tasks;
// a cross-site form is refused.
func TestStatusPageFromSharedState(t *testing.T) {
	rs := redistest.Start(t, redistest.WithPassword(redisPW))
	dir := t.TempDir()
	path := filepath.Join(dir, "bidder.yaml")
	if err := os.WriteFile(path, []byte(`
http:
  addr: 127.0.0.1:0
  monitoring: {basic_auth: {username: ops, password_env: UIPW}}
  actions: {enabled: true}
marketplaces:
  - id: sbx
    adapter: sandbox
    base_url: http://127.0.0.1:9
    token_env: TOK
    rules:
      amount: {fixed: {strategy: fixed, amount: 100}}
      proposal: {template: "hi"}
      bid_budget: {per_hour: 5}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDIS_URL": "redis://:" + redisPW + "@" + rs.Addr() + "/0", "TOK": mpToken, "UIPW": uiPW}
	reg, _ := Adapters()
	cfg, err := config.Load(config.Options{Path: path, Adapters: reg.Names(),
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	ctx := context.Background()
	a, err := New(ctx, cfg, zap.New(core), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rdb := a.Conn.Client
	now := time.Now()

	// What workers and scanners elsewhere wrote.
	rec := history.NewRecorder(rdb)
	rec.Decided("sbx", history.Decision{Posting: "p-7", State: "placed", Amount: 120, Currency: "EUR",
		Title: `<img src=x onerror=alert(1)> Go job`, URL: "https://sandbox.example/p-7"})
	rec.Decided("sbx", history.Decision{Posting: "p-8", State: "skipped", Rule: "keywords"})
	rec.Count("sbx", "dup:lock", 2)
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var found []ledger.Found
	for _, id := range []string{"p-1", "p-2", "p-3"} {
		b, _ := json.Marshal(worker.BidPayload{Version: 1, Posting: marketplace.Posting{MarketplaceID: "sbx", ID: id, Title: "t"}})
		found = append(found, ledger.Found{PostingID: id, Payload: b})
	}
	if _, err := a.Ledger.Discover(ctx, "sbx", found); err != nil {
		t.Fatal(err)
	}
	keys := a.Locks.Keys()
	if err := a.Ledger.Park(ctx, keys.Lock("sbx", "p-1"), keys.Fence("sbx", "p-1"), "", "sbx", "p-1", "marketplace_transient", "HTTP 503 x10"); err != nil {
		t.Fatal(err)
	}
	att, err := a.Locks.Prepare("sbx", "p-2")
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Ledger.Claim(ctx, att, "sbx", "p-2", ledger.Decision{State: ledger.StateIntent})
	if err != nil || !c.Outcome.Holds() {
		t.Fatal(c, err)
	}
	l := att.Held(ctx, c.Token)
	if err := a.Ledger.Park(ctx, l.Key(), l.FenceKey(), l.Holder(), "sbx", "p-2", "marketplace_ambiguous", "timeout after send"); err != nil {
		t.Fatal(err)
	}
	l.MarkReleased()
	for _, id := range []string{"x1", "x2"} {
		if ok, _, err := a.Markets["sbx"].Budget.Take(ctx, "sbx", id, now); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	opens := now.Truncate(time.Hour).Add(time.Hour)
	if err := rules.NewWaits(rdb, "").Add(ctx, "sbx", "p-3", opens); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, scanner.DefaultStatusKeyPrefix+":{sbx}", "at", now.Add(-3*time.Second).UnixMilli(), "result", "ok",
		"seen", 40, "enqueued", 3, "newest", now.Add(-time.Minute).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Enqueue(asynq.NewTask("bid:place", []byte("{}")), asynq.Queue(worker.MarketplaceQueue("sbx"))); err != nil {
		t.Fatal(err)
	}
	busy := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 2, Queues: map[string]int{"idle": 1}, LogLevel: asynq.FatalLevel})
	if err := busy.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	defer busy.Shutdown()

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx, Roles{Name: "monitor", Monitor: true}) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	base := ""
	wait.Until(t, 10*time.Second, "the bidder starting line", func() bool {
		for _, e := range logs.FilterMessage("bidder starting").All() {
			base = strings.TrimSuffix(e.ContextMap()["status_page"].(string), "/")
		}
		return base != ""
	})

	get := func() string {
		resp, err := http.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var page string
	wait.Until(t, 10*time.Second, "a page that lists the worker", func() bool {
		page = get()
		return strings.Contains(page, `data-worker="`)
	})

	for _, want := range []string{
		`<td data-metric="placed">1</td>`, `<td data-metric="skipped">1</td>`, `<td data-metric="parked">2</td>`,
		`<td data-metric="undecided">1</td>`, `<td data-metric="duplicates">2</td>`,
		`data-posting="p-1"`, `data-posting="p-2"`, `yes: resume asks the marketplace first`, `HTTP 503 x10`,
		`<td data-metric="hour_left">3</td>`, `<span data-wait="1">`, `<td class="l">ok</td><td>40</td><td>3</td>`,
		`<tr data-queue="bids:sbx"><td class="l">bids:sbx</td><td data-metric="size">1</td>`,
		`<tr data-queue="scans"><td class="l">scans</td><td data-metric="size">0</td>`,
		`&lt;img src=x onerror=alert(1)&gt; Go job`, `href="https://sandbox.example/p-7"`, `data-rule="keywords"`,
		`data-chart="placed" data-marketplace="sbx"`, `data-resume-posting="p-2"`, `data-resume-reason="marketplace_transient"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, `id="problems"`) {
		t.Errorf("the page could not read everything")
	}
	for _, secret := range []string{redisPW, mpToken, uiPW} {
		if strings.Contains(page, secret) {
			t.Errorf("page shows the secret %q", secret)
		}
	}
	if t.Failed() {
		t.Fatalf("page:\n%s", page)
	}

	post := func(form url.Values, header map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+httpserver.ActionsPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		req.SetBasicAuth("ops", uiPW)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	state := func(id string) ledger.State {
		r, err := a.Ledger.Get(ctx, "sbx", id)
		if err != nil {
			t.Fatal(err)
		}
		return r.State
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	hasTask := func(id string) bool {
		_, err := insp.GetTaskInfo(worker.MarketplaceQueue("sbx"), worker.BidTaskID("sbx", id))
		return err == nil
	}
	p2 := url.Values{"marketplace": {"sbx"}, "posting": {"p-2"}}
	if code, _ := post(p2, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden || state("p-2") != ledger.StateParked {
		t.Fatalf("cross-site resume: %d, p-2 %q; want 403 and still parked", code, state("p-2"))
	}
	same := map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"}
	if code, body := post(p2, same); code != 200 || state("p-2") != ledger.StateIntent || !hasTask("p-2") {
		t.Fatalf("resume p-2: %d %.300s; state %q, task %v; want the intent back and its task", code, body, state("p-2"), hasTask("p-2"))
	}
	if code, body := post(url.Values{"marketplace": {"sbx"}, "reason": {"marketplace_transient"}}, same); code != 200 ||
		!strings.Contains(body, "resumed 1") || state("p-1") != ledger.StateNone || !hasTask("p-1") {
		t.Fatalf("resume by reason: %d %.300s; p-1 %q, task %v", code, body, state("p-1"), hasTask("p-1"))
	}
	if code, body := post(p2, same); code != http.StatusOK {
		t.Errorf("resuming p-2 again: %d %.300s; want a harmless 200 (its task exists)", code, body)
	}
	if code, body := post(url.Values{"marketplace": {"other"}, "posting": {"p-1"}}, same); code != http.StatusConflict || !strings.Contains(body, "not configured") {
		t.Errorf("unknown marketplace: %d %.300s; want 409", code, body)
	}
	if page = get(); !strings.Contains(page, `<td data-metric="parked">0</td>`) || !strings.Contains(page, `<td data-metric="undecided">3</td>`) {
		t.Errorf("after the resumes the page does not show 0 parked and 3 undecided")
	}
}
