package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/history"
	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/scanner"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// RequireChromiumEnv turns "no chromium" from a skip into a failure (CI).
const requireChromiumEnv = "BIDDER_REQUIRE_CHROMIUM"

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(requireChromiumEnv) == "1" {
		t.Fatalf("chromium not found and %s=1", requireChromiumEnv)
	}
	t.Skip("chromium not found (apt-get install chromium); skipping the browser test")
	return ""
}

// headless runs Chromium the way it works on a closed network, as root.
func headless(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return out
}

var (
	placedCell = regexp.MustCompile(`<tr data-marketplace="sandbox">.*?<td data-metric="placed">([0-9]+)</td>`)
	// asynqmon's queue table: the queue's link, its state, then its size.
	bidsQueueRow = regexp.MustCompile(`href="/monitoring/queues/bids(?::|%3A)sandbox">bids:sandbox</a></th><td[^>]*><span[^>]*>run</span></td><td[^>]*>([0-9]+)</td>`)
)

// TestStatusPageInBrowser renders the UI pages of an embedded `run` in a
// real headless Chromium: the status page's DOM must show bids actually
// placed, drawn in its chart, and its screenshot must be a real rendering,
// not a blank page; the asynq web UI must render the bids queue with tasks
// in it.
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	emb, err := os.ReadFile("../../configs/embedded.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "bidder.yaml", strings.Replace(string(emb), "addr: 127.0.0.1:8080", "addr: 127.0.0.1:0", 1))
	p := start(t, dir, nil, "run")
	base := p.baseURL()
	// The page reads the history the workers flush every few seconds.
	wait.Until(t, 30*time.Second,

		"a placed bid on the status page", func() bool {
			_, page := get(t, base+"/", "", "")
			m := placedCell.FindStringSubmatch(strings.ReplaceAll(page, "\n", ""))
			return m != nil && m[1] != "0"
		})

	dom := headless(t, bin, "--dump-dom", base+"/")
	m := placedCell.FindSubmatch(bytes.ReplaceAll(dom, []byte("\n"), nil))
	if m == nil {
		t.Fatalf("rendered page has no placed count for sandbox:\n%.2000s", dom)
	}
	placedTotal, _ := strconv.Atoi(string(m[1]))
	if placedTotal <= 0 {
		t.Fatalf("rendered placed count %q, want > 0", m[1])
	}
	// Every bid placed is in the last minutes, so the chart's bars add up
	// to at least the total the table read a moment before.
	bars := chartBars(t, dom, "sandbox", "placed")
	if drawn := bars["placed"]; len(drawn) == 0 || sum(drawn) < int64(placedTotal) {
		t.Fatalf("placed chart draws %v, want bars adding up to >= %d", drawn, placedTotal)
	}

	screenshot(t, bin, base+"/", filepath.Join(dir, "status.png"), "1200,900")
	// The asynq web UI is a React app fed by its API: give its scripts
	// virtual time to fetch and render, then read the queue table.
	ui := headless(t, bin, "--virtual-time-budget=8000", "--dump-dom", base+"/monitoring/")
	q := bidsQueueRow.FindSubmatch(ui)
	if q == nil {
		t.Fatalf("asynqmon rendered no row for the bids:sandbox queue:\n%.3000s", ui)
	}
	if n, _ := strconv.Atoi(string(q[1])); n <= 0 {
		t.Fatalf("asynqmon shows bids:sandbox queue size %s, want > 0 (completed tasks are retained)", q[1])
	}

	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// screenshot saves a PNG of url and fails unless it is a real rendering.
func screenshot(t *testing.T, bin, url, path, size string) {
	t.Helper()
	headless(t, bin, "--window-size="+size, "--hide-scrollbars", "--screenshot="+path, url)
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	colours := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	// Text on a white page anti-aliases into dozens of greys; a blank or
	// error page has a handful of colours.
	if len(colours) < 20 {
		t.Fatalf("screenshot has %d colours: the page did not render", len(colours))
	}
}

var (
	figureRe = regexp.MustCompile(`(?s)<figure data-chart="([a-z]+)" data-marketplace="([^"]+)">(.*?)</figure>`)
	rectRe   = regexp.MustCompile(`<rect [^>]*data-series="([^"]*)" data-count="([0-9]+)"`)
)

// chartBars reads one chart of the rendered DOM: each series' bar counts,
// in drawing order. Every bar is an SVG rect inside the chart's svg.
func chartBars(t *testing.T, dom []byte, marketplaceID, chart string) map[string][]int64 {
	t.Helper()
	for _, f := range figureRe.FindAllSubmatch(dom, -1) {
		if string(f[1]) != chart || string(f[2]) != marketplaceID {
			continue
		}
		out := map[string][]int64{}
		rects := rectRe.FindAllSubmatch(f[3], -1)
		for _, r := range rects {
			n, _ := strconv.ParseInt(string(r[2]), 10, 64)
			out[string(r[1])] = append(out[string(r[1])], n)
		}
		if len(rects) > 0 && !bytes.Contains(f[3], []byte("<svg")) {
			t.Fatalf("chart %s of %s: bars outside an svg", chart, marketplaceID)
		}
		return out
	}
	t.Fatalf("no %s chart for %s in the DOM:\n%.3000s", chart, marketplaceID, dom)
	return nil
}

func sum(ns []int64) int64 {
	var s int64
	for _, n := range ns {
		s += n
	}
	return s
}

// Recognisable secrets for the shared-state browser test: none may appear
// in the DOM.
const (
	uiRedisPW  = "redis-pw-uitest-4e1f"
	uiMPToken  = "mp-token-uitest-9a2c"
	uiPassword = "ui-pw-uitest-77d0"
)

// TestSharedStatusPageInBrowser: `bidder monitor` against a real Redis
// (password set) that holds six hours of history, parked and undecided
// postings, a spent budget with waiting postings and a last scan, as other
// instances would have left them. In headless Chromium:
//
//   - each chart draws exactly the bars of the data (one rect per minute
//     and series, with its count);
//   - with JavaScript off the tables are all there;
//   - no secret is in the DOM (Redis password, marketplace token, UI
//     password);
//   - with http.actions.enabled, clicking Resume (a real mouse click, no
//     script) puts a parked posting back, undecided with its task enqueued,
//     and the per-reason button does so for every posting of the reason.
//
// The screenshot of this page is docs/img/status.png
// (BIDDER_SCREENSHOT_DIR=docs/img).
func TestSharedStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	rs := redistest.Start(t, redistest.WithPassword(uiRedisPW))
	rdb := rs.Client(t)
	ctx := context.Background()
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "bidder.yaml", `
http:
  addr: 127.0.0.1:0
  monitoring: {basic_auth: {username: ops, password_env: UI_PW}}
  actions: {enabled: true}
`+minimalMarketplace+`      bid_budget: {per_hour: 50}
  - id: ag1
    adapter: sandbox
    base_url: http://127.0.0.1:9
    rules:
      amount: {fixed: {strategy: fixed, amount: 100}}
      proposal: {template: "hi"}
    accounts:
      - {name: alice, token_env: TOK, rules: {bid_budget: {per_hour: 10}}}
      - {name: bob, token_env: TOK}
`)
	want := seedSharedState(t, ctx, rdb)
	// An agency account's budget counts under its own scope.
	for i := range 2 {
		if ok, _, err := rules.NewBudget(rdb, "", 10, 0).Take(ctx, worker.BudgetScope("ag1", "alice"), fmt.Sprintf("a-%d", i), time.Now()); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}

	p := start(t, dir, []string{"REDIS_URL=redis://:" + uiRedisPW + "@" + rs.Addr() + "/0", "TOK=" + uiMPToken, "UI_PW=" + uiPassword},
		"monitor", "--config", cfgPath)
	base := p.baseURL()
	wait.Until(t, 15*time.Second, "the monitor ready", func() bool { code, _ := get(t, base+"/readyz", "", ""); return code == 200 })

	dom := headless(t, bin, "--dump-dom", base+"/")
	for chart, series := range want {
		got := chartBars(t, dom, "mp1", chart)
		if fmt.Sprint(got) != fmt.Sprint(series) {
			t.Errorf("%s chart draws\n  %v\nwant\n  %v", chart, got, series)
		}
	}
	for _, secret := range []string{uiRedisPW, uiMPToken, uiPassword} {
		if bytes.Contains(dom, []byte(secret)) {
			t.Errorf("the DOM holds the secret %q", secret)
		}
	}
	if bytes.Contains(dom, []byte(`id="problems"`)) {
		t.Errorf("the page could not read everything:\n%s", dom)
	}

	// --dump-dom reads the DOM with a script, which JavaScript off stops;
	// the DevTools protocol reads it without one.
	b := newBrowser(t, bin, "--blink-settings=scriptEnabled=false")
	b.open("data:text/html,<p id=js>off</p><script>document.getElementById('js').textContent='on'</script>")
	if js := b.html("#js"); !strings.Contains(js, ">off<") {
		t.Fatalf("JavaScript is not off in this browser: %s", js)
	}
	b.open(base + "/")
	off := []byte(b.html("html"))
	for _, table := range []string{"ledger", "parked-reasons", "parked", "budget", "scans", "queues", "workers", "decisions", "skip-reasons", "conditions"} {
		if !bytes.Contains(off, []byte(`<table data-table="`+table+`">`)) {
			t.Errorf("JavaScript off: no %s table", table)
		}
	}
	for _, cell := range []string{`<td data-metric="parked">3</td>`, `<td data-metric="undecided">1</td>`, `<td data-metric="hour_left">38</td>`,
		`<span data-wait="5">`, `<td class="l">ok</td><td>120</td><td>7</td>`,
		`<tr data-marketplace="ag1" data-account="alice"><td class="l">ag1 / alice</td><td data-metric="hour_left">8</td>`,
		`<tr data-queue="bids:mp1"><td class="l">bids:mp1</td><td data-metric="size">5</td><td>0</td><td>0</td><td>5</td>`, `data-posting="p-1"`, `&lt;b&gt;bold&lt;/b&gt; job`} {
		if !bytes.Contains(off, []byte(cell)) {
			t.Errorf("JavaScript off: no %s", cell)
		}
	}
	if t.Failed() {
		t.Fatalf("DOM with JavaScript off:\n%s", off)
	}
	if out := os.Getenv("BIDDER_SCREENSHOT_DIR"); out != "" {
		screenshot(t, bin, base+"/", filepath.Join(out, "status.png"), "1280,1700")
	}

	// Resume through the page, as an operator clicks, still with
	// JavaScript off.
	led := ledger.New(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	back := func(id string) bool {
		rec, err := led.Get(ctx, "mp1", id)
		if err != nil {
			t.Fatal(err)
		}
		_, terr := insp.GetTaskInfo(worker.MarketplaceQueue("mp1"), worker.BidTaskID("mp1", id))
		return rec.State == ledger.StateNone && terr == nil
	}
	b.auth("ops", uiPassword)
	for _, c := range []struct {
		button, result string
		back, parked   []string
	}{
		{`button[data-resume-posting="p-1"]`, "resumed 1 of mp1's posting p-1", []string{"p-1"}, []string{"p-2", "p-3"}},
		{`button[data-resume-reason="marketplace_transient"]`, "resumed 1 of mp1's postings parked for marketplace_transient", []string{"p-2"}, []string{"p-3"}},
	} {
		b.open(base + "/")
		b.click(c.button)
		if res := b.html("#result"); !strings.Contains(res, c.result) {
			t.Fatalf("after a click on %s the browser shows %q, want %q", c.button, res, c.result)
		}
		for _, id := range c.back {
			if !back(id) {
				t.Errorf("after a click on %s, %s is not undecided with its task", c.button, id)
			}
		}
		for _, id := range c.parked {
			if back(id) {
				t.Errorf("after a click on %s, %s came back too", c.button, id)
			}
		}
	}
	if _, page := get(t, base+"/", "", ""); !strings.Contains(page, `<td data-metric="parked">1</td>`) {
		t.Errorf("the page does not show the one posting still parked")
	}
}

// seedSharedState writes what workers and scanners elsewhere would have:
// six hours of history through internal/history (and returns the bars each
// chart must draw, by series, oldest first), four discovered postings of
// which three are parked, budget used and waited for, and a last scan.
func seedSharedState(t *testing.T, ctx context.Context, rdb redis.UniversalClient) map[string]map[string][]int64 {
	t.Helper()
	now := time.Now()
	var at time.Time
	rec := history.NewRecorder(rdb, history.WithClock(func() time.Time { return at }))
	want := map[string]map[string][]int64{"placed": {}, "skipped": {}, "failed": {}, "duplicates": {}, "parked": {}}
	add := func(chart, series string, n int) {
		want[chart][series] = append(want[chart][series], int64(n))
	}
	// A pattern busy enough to read: bids most minutes, a burst of skips
	// each hour, a few failures, duplicates stopped at two layers.
	every := func(k, n int) func(int) int {
		return func(m int) int {
			if m%k == 0 {
				return n
			}
			return 0
		}
	}
	counts := []struct {
		metric, chart, series string
		n                     func(minutesAgo int) int
	}{
		{"skipped:keywords", "skipped", "keywords", func(m int) int { return max(8-m%60, 0) }},
		{"skipped:budget_range", "skipped", "budget_range", every(9, 2)},
		{"failed:marketplace_closed", "failed", "marketplace_closed", every(47, 1)},
		{"dup:enqueue", "duplicates", "enqueue", every(6, 3)},
		{"dup:lock", "duplicates", "lock", every(50, 1)},
		{"parked", "parked", "parked", func(m int) int { return map[int]int{30: 1, 90: 1, 200: 1}[m] }},
	}
	for m := 350; m >= 1; m-- {
		at = now.Add(-time.Duration(m) * time.Minute)
		if n := (m*7)%5 + (m/40)%3; n > 0 && m%4 != 0 {
			for range n {
				rec.Decided("mp1", history.Decision{Posting: fmt.Sprintf("q-%d", m), State: "placed", Amount: 100, Currency: "USD", Title: "job"})
			}
			add("placed", "placed", n)
		}
		for _, c := range counts {
			if n := c.n(m); n > 0 {
				rec.Count("mp1", c.metric, n)
				add(c.chart, c.series, n)
			}
		}
	}
	at = now
	rec.Decided("mp1", history.Decision{Posting: "p-99", State: "placed", Amount: 250, Currency: "EUR",
		Title: "<b>bold</b> job", URL: "https://sandbox.example/jobs/p-99"})
	add("placed", "placed", 1)
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	led := ledger.New(rdb)
	keys := lock.NewManager(rdb).Keys()
	for i, reason := range []string{"marketplace_transient", "marketplace_transient", "redis", ""} {
		id := fmt.Sprintf("p-%d", i+1)
		b, _ := json.Marshal(worker.BidPayload{Version: 1, Posting: marketplace.Posting{MarketplaceID: "mp1", ID: id, Title: "t"}})
		if _, err := led.Discover(ctx, "mp1", []ledger.Found{{PostingID: id, Payload: b}}); err != nil {
			t.Fatal(err)
		}
		if reason == "" {
			continue
		}
		if err := led.Park(ctx, keys.Lock("mp1", id), keys.Fence("mp1", id), "", "mp1", id, reason, "attempts ran out"); err != nil {
			t.Fatal(err)
		}
	}
	budget := rules.NewBudget(rdb, "", 50, 0)
	for i := range 12 {
		if ok, _, err := budget.Take(ctx, "mp1", fmt.Sprintf("b-%d", i), now); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	// Five postings wait for the next hour's window: listed, and their
	// tasks scheduled for it.
	waits := rules.NewWaits(rdb, "")
	opens := now.Truncate(time.Hour).Add(time.Hour)
	client := asynq.NewClientFromRedisClient(rdb)
	for i := range 5 {
		id := fmt.Sprintf("w-%d", i)
		if err := waits.Add(ctx, "mp1", id, opens); err != nil {
			t.Fatal(err)
		}
		task, err := worker.NewBidTask(marketplace.Posting{MarketplaceID: "mp1", ID: id}, asynq.Queue(worker.MarketplaceQueue("mp1")), asynq.ProcessAt(opens))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.HSet(ctx, scanner.DefaultStatusKeyPrefix+":{mp1}", "at", now.Add(-2*time.Second).UnixMilli(), "result", "ok",
		"seen", 120, "enqueued", 7, "newest", now.Add(-45*time.Second).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	return want
}

// browser drives a headless Chromium over the DevTools protocol on a pipe
// (--remote-debugging-pipe: fd 3 in, fd 4 out, NUL-terminated JSON), so a
// test can click like a user without a driver or a library.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      *os.File
	out     *bufio.Reader
	id      int
	session string
	events  []string // methods of events not yet waited for
}

func newBrowser(t *testing.T, bin string, args ...string) *browser {
	t.Helper()
	cr, bw, err := os.Pipe() // Chromium reads commands from fd 3
	if err != nil {
		t.Fatal(err)
	}
	br, cw, err := os.Pipe() // and writes answers to fd 4
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--remote-debugging-pipe", "--window-size=1280,1700"}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), "about:blank")...)
	cmd.ExtraFiles = []*os.File{cr, cw}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	cr.Close()
	cw.Close()
	b := &browser{t: t, cmd: cmd, in: bw, out: bufio.NewReader(br)}
	t.Cleanup(func() {
		bw.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		br.Close()
		cancel()
	})
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call("Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.call("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	b.session = att.SessionID
	b.call("Page.enable", nil, nil)
	b.call("Network.enable", nil, nil)
	return b
}

// call sends one command to the page's session (the browser's before
// there is one) and decodes its result into res.
func (b *browser) call(method string, params map[string]any, res any) {
	b.t.Helper()
	b.id++
	msg := map[string]any{"id": b.id, "method": method, "params": params}
	if params == nil {
		msg["params"] = map[string]any{}
	}
	if b.session != "" {
		msg["sessionId"] = b.session
	}
	data, _ := json.Marshal(msg)
	if _, err := b.in.Write(append(data, 0)); err != nil {
		b.t.Fatalf("devtools %s: %v", method, err)
	}
	for {
		var m struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		b.read(&m)
		switch {
		case m.Method != "":
			b.events = append(b.events, m.Method)
		case m.ID != b.id:
		case m.Error != nil:
			b.t.Fatalf("devtools %s: %s", method, m.Error.Message)
		default:
			if res != nil {
				if err := json.Unmarshal(m.Result, res); err != nil {
					b.t.Fatalf("devtools %s: %v", method, err)
				}
			}
			return
		}
	}
}

func (b *browser) read(v any) {
	b.t.Helper()
	data, err := b.out.ReadBytes(0)
	if err != nil {
		b.t.Fatalf("devtools pipe: %v", err)
	}
	if err := json.Unmarshal(data[:len(data)-1], v); err != nil {
		b.t.Fatalf("devtools message %.200q: %v", data, err)
	}
}

// wait returns once the event has come (it may have already).
func (b *browser) wait(event string) {
	b.t.Helper()
	for {
		if i := slices.Index(b.events, event); i >= 0 {
			b.events = b.events[i+1:]
			return
		}
		var m struct {
			Method string `json:"method"`
		}
		b.read(&m)
		if m.Method != "" {
			b.events = append(b.events, m.Method)
		}
	}
}

// auth sends basic auth credentials with every request of the page.
func (b *browser) auth(user, pass string) {
	b.call("Network.setExtraHTTPHeaders", map[string]any{"headers": map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}, nil)
}

// open navigates and waits for the page to load.
func (b *browser) open(url string) {
	b.t.Helper()
	b.events = nil
	b.call("Page.navigate", map[string]any{"url": url}, nil)
	b.wait("Page.loadEventFired")
}

// node finds selector in the current document.
func (b *browser) node(selector string) int {
	b.t.Helper()
	var doc struct {
		Root struct {
			NodeID int `json:"nodeId"`
		} `json:"root"`
	}
	b.call("DOM.getDocument", nil, &doc)
	var q struct {
		NodeID int `json:"nodeId"`
	}
	b.call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": selector}, &q)
	if q.NodeID == 0 {
		b.t.Fatalf("no %s on the page", selector)
	}
	return q.NodeID
}

// click presses and releases the mouse on the middle of selector's box,
// as a user does, and waits for the page that follows.
func (b *browser) click(selector string) {
	b.t.Helper()
	id := b.node(selector)
	b.call("DOM.scrollIntoViewIfNeeded", map[string]any{"nodeId": id}, nil)
	var box struct {
		Model struct {
			Content []float64 `json:"content"`
		} `json:"model"`
	}
	b.call("DOM.getBoxModel", map[string]any{"nodeId": id}, &box)
	q := box.Model.Content // four corners, x,y each
	if len(q) != 8 {
		b.t.Fatalf("%s has no box: %v", selector, q)
	}
	x, y := (q[0]+q[4])/2, (q[1]+q[5])/2
	b.events = nil
	for _, typ := range []string{"mousePressed", "mouseReleased"} {
		b.call("Input.dispatchMouseEvent", map[string]any{"type": typ, "x": x, "y": y, "button": "left", "clickCount": 1}, nil)
	}
	b.wait("Page.loadEventFired")
}

// html is selector's outer HTML in the current document.
func (b *browser) html(selector string) string {
	b.t.Helper()
	var h struct {
		OuterHTML string `json:"outerHTML"`
	}
	b.call("DOM.getOuterHTML", map[string]any{"nodeId": b.node(selector)}, &h)
	return h.OuterHTML
}
