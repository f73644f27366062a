package httpserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var now = time.Date(2026, 3, 4, 12, 34, 56, 0, time.UTC)

// sample is a Status with some of everything as of now, including a title
// and URL a hostile marketplace could send.
func sample(now time.Time) Status {
	at := func(minAgo int) time.Time { return now.Truncate(time.Minute).Add(-time.Duration(minAgo) * time.Minute) }
	return Status{
		Marketplaces: []Marketplace{{
			ID: "sbx",
			Totals: map[string]int64{"placed": 40, "dry_run": 2, "skipped:keywords": 7, "skipped:budget_range": 9, "skipped": 1,
				"failed:marketplace_closed": 3, "parked": 2, "dup:lock": 5, "dup:enqueue": 11, "bogus": 99},
			History: map[string][]Point{
				"placed":           {{at(0), 2}, {at(1), 3}, {at(10), 1}},
				"dry_run":          {{at(1), 1}},
				"skipped:keywords": {{at(1), 4}, {at(2), 1}},
				"dup:lock":         {{at(5), 2}},
				"parked":           {{at(3), 1}},
				// outside a 6 h window: not drawn
				"failed:marketplace_closed": {{at(7 * 60), 3}},
				"unknown":                   {{at(1), 5}},
			},
			Undecided:   12,
			ParkedTotal: 3,
			Parked: []Parked{
				{Posting: "p-1", Since: at(90), Rule: "marketplace_transient", Reason: "HTTP 503 x10", HeldIntent: true},
				{Posting: "p-2", Since: at(60), Rule: "marketplace_transient", Reason: "HTTP 503 x10"},
				{Posting: "p-3", Since: at(30), Rule: "redis", Reason: "i/o timeout"},
			},
			Budgets: []Budget{{HourLeft: 3, DayLeft: -1, Waits: []Wait{{Opens: now.Truncate(time.Hour).Add(time.Hour), Postings: 17}}}},
			Scan:    &Scan{At: now.Add(-4 * time.Second), Result: "ok", Seen: 100, Enqueued: 4, Newest: now.Add(-90 * time.Second)},
			Recent: []Decision{
				{At: at(0), Posting: "p-9", Title: `<script>alert(1)</script> & "Go" job`, URL: "javascript:alert(2)", State: "placed", Amount: 125.5, Currency: "USD"},
				{At: at(2), Posting: "p-8", Title: "Rust job", URL: "https://example.com/jobs/8?a=1&b=2", State: "skipped", Rule: "keywords"},
			},
			CanRetract:  true,
			ReviewTotal: 3,
			Reviews: []Review{
				{Posting: "r-1", Title: "Big <i>job</i>", Until: now.Add(time.Hour), Amount: 900, Currency: "USD", Proposal: "<script>x()</script> I can", Reason: "amount 900 above 500"},
				{Posting: "r-2", Title: "Other", Until: now.Add(2 * time.Hour), Amount: 50, Currency: "EUR", Proposal: "hi", Reason: "share"},
			},
		}, {ID: "quiet", Budgets: []Budget{ // agency mode: one row per account with a budget
			{Account: "acct-a", HourLeft: 0, DayLeft: 4, Waits: []Wait{{Opens: now.Truncate(time.Hour).Add(time.Hour), Postings: 2}}},
			{Account: "acct-b", HourLeft: 9, DayLeft: 20},
		}}, {ID: "plain"}},
		Queues:     []Queue{{Name: "bids:sbx", Size: 30, Pending: 10, Scheduled: 17, Done: 3, Latency: 1500 * time.Millisecond}},
		Workers:    []Worker{{Host: "w1", PID: 42, Concurrency: 20, Active: 3, Queues: "bids:sbx=6, scans=3", Started: now.Add(-time.Hour), Status: "active"}},
		Conditions: []Condition{{Kind: "replicas_short", Detail: "0 of 1 replicas acknowledged", Since: now.Add(-time.Minute)}},
		Problems:   []string{"queues: connection refused"},
	}
}

func TestBucketFor(t *testing.T) {
	for hours, want := range map[int]time.Duration{1: time.Minute, 6: time.Minute, 12: 2 * time.Minute, 24: 5 * time.Minute, 48: 10 * time.Minute} {
		if got := bucketFor(time.Duration(hours) * time.Hour); got != want {
			t.Errorf("%d h: bars of %s, want %s", hours, got, want)
		}
		since, until, b := window(now, hours)
		if n := until.Sub(since) / b; n > maxBars || until.Before(now) || until.Sub(now) > b {
			t.Errorf("%d h: %s..%s in %d bars of %s", hours, since, until, n, b)
		}
	}
}

func TestBuildPage(t *testing.T) {
	p := buildPage(sample(now), now, DefaultHours)
	m := p.Marketplaces[0]
	if m.Placed != 40 || m.DryRun != 2 || m.Skipped != 17 || m.Failed != 3 || m.ParkedEvents != 2 || m.Duplicates != 16 {
		t.Fatalf("totals %+v", m)
	}
	want := []Count{{"budget_range", 9}, {"keywords", 7}, {"(none given)", 1}}
	if fmt.Sprint(m.SkipReasons) != fmt.Sprint(want) {
		t.Errorf("skip reasons %v, want %v", m.SkipReasons, want)
	}
	if fmt.Sprint(m.ParkedReasons) != fmt.Sprint([]Count{{"marketplace_transient", 2}, {"redis", 1}}) {
		t.Errorf("parked reasons %v", m.ParkedReasons)
	}
	if len(p.Recent) != 2 || p.Recent[0].Posting != "p-9" || p.Recent[0].Marketplace != "sbx" {
		t.Errorf("recent %+v", p.Recent)
	}
	got := map[string]int{}
	for _, c := range m.Charts {
		got[c.Name] = len(c.Bars)
	}
	// placed: 3 minutes + a dry run; skipped: 2; dup: 1; parked: 1; the
	// failure 7 h ago is outside the window.
	if fmt.Sprint(got) != fmt.Sprint(map[string]int{"placed": 4, "skipped": 2, "failed": 0, "duplicates": 1, "parked": 1, "outcomes": 0}) {
		t.Errorf("bars per chart %v", got)
	}
}

// TestChartBarsStackAndAggregate: in a 48 h window the minutes add up into
// 10-minute bars, series stack without overlapping, and the tallest bar
// fills the plot.
func TestChartBarsStackAndAggregate(t *testing.T) {
	since, until, bucket := window(now, 48)
	first := since.Add(3 * time.Minute)
	h := map[string][]Point{
		"skipped:a": {{first, 2}, {first.Add(time.Minute), 3}, {first.Add(30 * time.Minute), 1}},
		"skipped:b": {{first.Add(2 * time.Minute), 5}},
		"skipped:c": {{since.Add(-time.Minute), 100}, {until, 100}}, // outside
	}
	var c chart
	for _, ch := range charts("m", h, since, until, bucket) {
		if ch.Name == "skipped" {
			c = ch
		}
	}
	if len(c.Bars) != 3 || c.Max != 10 || c.Total != 11 {
		t.Fatalf("bars %+v max %d total %d; want 3 bars, max 10 (2+3 of a and 5 of b in one bucket), total 11", c.Bars, c.Max, c.Total)
	}
	a, b := c.Bars[0], c.Bars[2]
	if a.Series != "a" || a.Count != 5 || b.Series != "b" || b.Count != 5 || a.X != b.X {
		t.Fatalf("stack %+v / %+v", a, b)
	}
	if a.Y+a.H != plotBottom || b.Y+b.H != a.Y || b.Y != plotTop {
		t.Errorf("a from %v to %v, b from %v to %v: want b on a, filling %v..%v", a.Y, a.Y+a.H, b.Y, b.Y+b.H, plotTop, plotBottom)
	}
	if !c.Bars[1].At.Equal(since.Add(30 * time.Minute)) {
		t.Errorf("second bar at %s", c.Bars[1].At)
	}
}

type fakeActions struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeActions) Resume(_ context.Context, mp, posting string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, mp+"/"+posting)
	return f.err
}

func (f *fakeActions) ResumeReason(_ context.Context, mp, reason string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, mp+"?"+reason)
	return 2, f.err
}

func (f *fakeActions) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeActions) Approve(_ context.Context, mp, posting, by string, amount float64, proposal string) (bool, error) {
	f.record(fmt.Sprintf("approve %s/%s by %s: %v %q", mp, posting, by, amount, proposal))
	return false, f.err
}

func (f *fakeActions) Reject(_ context.Context, mp, posting, by, why string) (bool, error) {
	f.record(fmt.Sprintf("reject %s/%s by %s: %q", mp, posting, by, why))
	return true, f.err
}

func (f *fakeActions) Retract(_ context.Context, mp, posting, by, why string) (bool, error) {
	f.record(fmt.Sprintf("retract %s/%s by %s", mp, posting, by))
	return false, f.err
}

func (f *fakeActions) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

var (
	rectRe   = regexp.MustCompile(`<rect [^>]*data-series="([^"]*)" data-count="([0-9]+)"`)
	figureRe = regexp.MustCompile(`(?s)<figure data-chart="([a-z]+)" data-marketplace="sbx">(.*?)</figure>`)
)

// TestStatusPageRenders: the page over a real server: every table, one SVG
// rect per drawn bar, outside text escaped and its javascript: link
// defused, no buttons while read-only, and a policy that runs no script.
func TestStatusPageRenders(t *testing.T) {
	var gotSince, gotUntil time.Time
	st := sample(time.Now().UTC())
	base := serve(t, Options{Addr: "127.0.0.1:0", Info: map[string]string{"role": "monitor", "redis": "127.0.0.1:6379 db 0"},
		Status: func(_ context.Context, since, until time.Time) Status {
			gotSince, gotUntil = since, until
			return st
		}})
	resp, body := do(t, request{url: base + "/?hours=48"})
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if d := gotUntil.Sub(gotSince); d != 48*time.Hour {
		t.Errorf("source asked for %s of history, want 48h", d)
	}
	for _, want := range []string{
		`data-table="ledger"`, `<td data-metric="placed">40</td>`, `<td data-metric="undecided">12</td>`, `<td data-metric="parked">3</td>`,
		`data-table="parked"`, `data-posting="p-1"`, `yes: resume asks the marketplace first`,
		`data-reason="marketplace_transient"`, `<td data-metric="hour_left">3</td>`, `<td data-metric="day_left">no limit</td>`, `data-wait="17"`,
		`data-table="scans"`, `<td class="l">ok</td>`, `data-queue="bids:sbx"`, `data-worker="w1:42"`,
		`data-rule="budget_range"`, `replicas_short`, `queues: connection refused`,
		`&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;Go&#34; job`, `href="https://example.com/jobs/8?a=1&amp;b=2"`,
		`bars of 10m0s`, `http.actions.enabled`, `data-quiet="quiet"`,
		`<tr data-marketplace="quiet" data-account="acct-a"><td class="l">quiet / acct-a</td><td data-metric="hour_left">0</td><td data-metric="day_left">4</td><td class="l"><span data-wait="2">`,
		`<tr data-marketplace="quiet" data-account="acct-b"><td class="l">quiet / acct-b</td><td data-metric="hour_left">9</td><td data-metric="day_left">20</td><td class="l">none</td>`,
		`<tr data-marketplace="plain"><td class="l">plain</td><td colspan="3" class="l">no bid budget</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	for _, bad := range []string{"<script>", "javascript:", "<form", "data-resume"} {
		if strings.Contains(body, bad) {
			t.Errorf("page has %q", bad)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// 48 h in 10-minute bars: each chart has the bars of the window the
	// source was asked for, one rect each.
	want := map[string]int64{}
	for _, c := range charts("sbx", st.Marketplaces[0].History, gotSince, gotUntil, 10*time.Minute) {
		want[c.Name] = int64(len(c.Bars))
	}
	if want["placed"] == 0 || want["skipped"] == 0 || want["failed"] == 0 {
		t.Fatalf("fixture draws nothing: %v", want)
	}
	figs := figureRe.FindAllStringSubmatch(body, -1)
	if len(figs) != len(chartGroups) {
		t.Fatalf("%d charts for sbx, want %d", len(figs), len(chartGroups))
	}
	for _, f := range figs {
		rects := rectRe.FindAllStringSubmatch(f[2], -1)
		if int64(len(rects)) != want[f[1]] {
			t.Errorf("chart %s: %d rects, want %d", f[1], len(rects), want[f[1]])
		}
		switch {
		case len(rects) == 0 && strings.Contains(f[2], "<svg"):
			t.Errorf("chart %s: an SVG with nothing to draw", f[1])
		case len(rects) > 0 && !strings.Contains(f[2], `data-bars="`+strconv.Itoa(len(rects))+`"`):
			t.Errorf("chart %s: data-bars disagrees with %d rects", f[1], len(rects))
		}
	}
}

func TestHoursParam(t *testing.T) {
	for q, want := range map[string]int{"": 6, "hours=1": 1, "hours=48": 48, "hours=1000": 48, "hours=0": 1, "hours=-3": 1, "hours=x": 6} {
		r := httptest.NewRequest("GET", "/?"+q, nil)
		if got := hoursParam(r); got != want {
			t.Errorf("%q: %d, want %d", q, got, want)
		}
	}
}

// TestResumeButtons: with actions on, the page has a form per parked
// posting and per reason; posting one needs the credentials and the page's
// own origin.
func TestResumeButtons(t *testing.T) {
	if _, err := Listen(Options{Addr: "127.0.0.1:0", Actions: &fakeActions{}}); err != ErrActionsNeedAuth {
		t.Fatalf("actions without credentials: %v, want ErrActionsNeedAuth", err)
	}
	acts := &fakeActions{}
	base := serve(t, Options{Addr: "127.0.0.1:0", Username: "ops", Password: "pw", Actions: acts,
		Status: func(context.Context, time.Time, time.Time) Status { return sample(time.Now()) }})
	_, body := do(t, request{url: base + "/"})
	if n := strings.Count(body, `<form method="post" action="/actions/resume">`); n != 5 {
		t.Errorf("%d resume forms, want 5 (3 postings, 2 reasons)", n)
	}
	if !strings.Contains(body, `data-resume-posting="p-3"`) || !strings.Contains(body, `data-resume-reason="redis"`) {
		t.Errorf("buttons missing:\n%s", body)
	}
	post := func(form url.Values, user string, header map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+ActionsPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		if user != "" {
			req.SetBasicAuth(user, "pw")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, resp.Header.Get("WWW-Authenticate"))
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		return resp.StatusCode, b.String() + string(buf[:n])
	}
	same := map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"}
	one := url.Values{"marketplace": {"sbx"}, "posting": {"p-1"}}
	if code, _ := post(one, "", same); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d, want 401", code)
	}
	if code, _ := post(one, "intruder", same); code != http.StatusUnauthorized {
		t.Errorf("wrong user: %d, want 401", code)
	}
	if code, _ := post(one, "ops", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Errorf("cross-site with credentials: %d, want 403", code)
	}
	if c := acts.called(); len(c) != 0 {
		t.Fatalf("refused requests reached the actions: %v", c)
	}
	if code, body := post(one, "ops", same); code != 200 || !strings.Contains(body, "resumed 1 of sbx") {
		t.Errorf("resume one: %d %s", code, body)
	}
	if code, body := post(url.Values{"marketplace": {"sbx"}, "reason": {"redis"}}, "ops", same); code != 200 || !strings.Contains(body, "resumed 2") {
		t.Errorf("resume reason: %d %s", code, body)
	}
	if code, _ := post(url.Values{"marketplace": {"sbx"}, "posting": {"p"}, "reason": {"r"}}, "ops", same); code != http.StatusBadRequest {
		t.Errorf("posting and reason: %d, want 400", code)
	}
	if code, _ := post(url.Values{"marketplace": {"sbx"}, "posting": {strings.Repeat("x", maxForm)}}, "ops", same); code != http.StatusBadRequest {
		t.Errorf("oversized form: %d, want 400", code)
	}
	if c := acts.called(); fmt.Sprint(c) != "[sbx/p-1 sbx?redis]" {
		t.Errorf("actions called %v", c)
	}
	acts.err = fmt.Errorf("%w: <b>p-1</b> is placed", ErrRefused)
	if code, body := post(one, "ops", same); code != http.StatusConflict || !strings.Contains(body, "&lt;b&gt;p-1&lt;/b&gt; is placed") {
		t.Errorf("refused: %d %s", code, body)
	}
	if resp, _ := do(t, request{url: base + ActionsPath}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", ActionsPath, resp.StatusCode)
	}
}

// TestReadOnlyHasNoActionRoute: without actions the route does not exist.
func TestReadOnlyHasNoActionRoute(t *testing.T) {
	base := serve(t, Options{Addr: "127.0.0.1:0", Username: "ops", Password: "pw"})
	resp, _ := do(t, request{method: http.MethodPost, url: base + ActionsPath, user: "ops", pass: "pw"})
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST %s on a read-only page: %d", ActionsPath, resp.StatusCode)
	}
}

// TestReviewAndRetractButtons (issues 16 and 17): the review queue shows
// each posting's proposed bid (escaped), with Approve (amount and proposal
// editable) and Reject forms when actions are on; placed bids get Retract.
// Every post needs the credentials and the page's own origin.
func TestReviewAndRetractButtons(t *testing.T) {
	status := func(context.Context, time.Time, time.Time) Status { return sample(time.Now()) }
	_, ro := do(t, request{url: serve(t, Options{Addr: "127.0.0.1:0", Status: status}) + "/"})
	if !strings.Contains(ro, `data-review="r-1"`) || strings.Contains(ro, `action="/actions/review"`) || strings.Contains(ro, `data-retract=`) {
		t.Errorf("read-only page: the queue must show, without buttons")
	}
	if strings.Contains(ro, "<script>x()") || strings.Contains(ro, "<i>job</i>") || !strings.Contains(ro, "&lt;script&gt;x()&lt;/script&gt; I can") {
		t.Errorf("a proposal or title is not escaped")
	}
	if !strings.Contains(ro, "the 2 nearest deadlines of 3 shown") {
		t.Errorf("a partial queue does not say so")
	}

	acts := &fakeActions{}
	base := serve(t, Options{Addr: "127.0.0.1:0", Username: "ops", Password: "pw", Actions: acts, Status: status})
	_, body := do(t, request{url: base + "/"})
	if n := strings.Count(body, `action="/actions/review"`); n != 4 {
		t.Errorf("%d review forms, want 4 (approve and reject for 2 postings)", n)
	}
	if !strings.Contains(body, `data-approve="r-1"`) || !strings.Contains(body, `data-reject="r-2"`) || !strings.Contains(body, `data-retract="p-9"`) || strings.Contains(body, `data-retract="p-8"`) {
		t.Errorf("buttons missing or on the wrong rows:\n%s", body)
	}
	post := func(path string, form url.Values, header map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		req.SetBasicAuth("ops", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	same := map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"}
	evil := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
	approve := url.Values{"marketplace": {"sbx"}, "posting": {"r-1"}, "action": {"approve"}, "amount": {"380"}, "proposal": {"edited"}}
	for _, path := range []string{ReviewPath, RetractPath} {
		if code, _ := post(path, approve, evil); code != http.StatusForbidden {
			t.Errorf("cross-site %s: %d, want 403", path, code)
		}
	}
	if code, b := post(ReviewPath, approve, same); code != 200 || !strings.Contains(b, "approved sbx:r-1") {
		t.Errorf("approve: %d %s", code, b)
	}
	if code, b := post(ReviewPath, url.Values{"marketplace": {"sbx"}, "posting": {"r-2"}, "action": {"reject"}, "why": {"not ours"}}, same); code != 200 || !strings.Contains(b, "rejected already") {
		t.Errorf("reject: %d %s", code, b)
	}
	if code, b := post(RetractPath, url.Values{"marketplace": {"sbx"}, "posting": {"p-9"}}, same); code != 200 || !strings.Contains(b, "retracted the bid on sbx:p-9") {
		t.Errorf("retract: %d %s", code, b)
	}
	for _, bad := range []url.Values{
		{"marketplace": {"sbx"}, "posting": {"r-1"}, "action": {"approve"}, "amount": {"lots"}},
		{"marketplace": {"sbx"}, "posting": {"r-1"}, "action": {"delete"}},
		{"marketplace": {"sbx"}, "action": {"approve"}},
	} {
		if code, _ := post(ReviewPath, bad, same); code != http.StatusBadRequest {
			t.Errorf("%v: %d, want 400", bad, code)
		}
	}
	want := `[approve sbx/r-1 by page:ops: 380 "edited" reject sbx/r-2 by page:ops: "not ours" retract sbx/p-9 by page:ops]`
	if c := acts.called(); fmt.Sprint(c) != want {
		t.Errorf("actions called\n  %v\nwant\n  %v", c, want)
	}
}
