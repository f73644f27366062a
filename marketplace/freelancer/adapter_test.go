package freelancer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bidder/bidder/marketplace"
)

var ctx = context.Background()

func checkClass(t *testing.T, err error, class error, reason string) *marketplace.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want %v (%s), got nil", class, reason)
	}
	var me *marketplace.Error
	if !errors.As(err, &me) {
		t.Fatalf("unclassified error %T: %v", err, err)
	}
	if !errors.Is(err, class) {
		t.Fatalf("want class %v, got %v", class, err)
	}
	if reason != "" && me.Reason != reason {
		t.Fatalf("want reason %q, got %q (%v)", reason, me.Reason, err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Fatalf("error leaks the token: %v", err)
	}
	return me
}

func TestConfig(t *testing.T) {
	base := marketplace.Config{ID: "freelancer", Token: testToken}
	a, err := NewAdapter(base)
	if err != nil {
		t.Fatal(err)
	}
	if a.site != DefaultBaseURL || a.s.periodDays != 7 || a.s.milestonePct != 100 || a.s.timeout != DefaultRequestTimeout || a.s.lookback != DefaultLookback {
		t.Fatalf("defaults: %+v", a.s)
	}
	if acct := a.Account(); acct != AccountFromToken(testToken) || !strings.HasPrefix(acct, "fl-") || strings.Contains(acct, testToken) {
		t.Fatalf("derived account %q", acct)
	}
	pinned := base
	pinned.Account = "fl-me"
	if a, _ := NewAdapter(pinned); a.Account() != "fl-me" {
		t.Fatalf("Config.Account ignored: %q", a.Account())
	}
	good := base
	good.Options = map[string]string{OptPeriodDays: "3", OptMilestonePct: "50", OptQuery: " go ", OptJobs: "3, 13,3", OptProjectTypes: "fixed,HOURLY", OptLookback: "1h", OptOwnerDetails: "false"}
	a, err = NewAdapter(good)
	if err != nil {
		t.Fatal(err)
	}
	if a.s.periodDays != 3 || a.s.milestonePct != 50 || a.s.query != "go" || len(a.s.jobs) != 2 || len(a.s.projectTypes) != 2 || a.s.lookback != time.Hour || a.s.ownerDetails {
		t.Fatalf("options: %+v", a.s)
	}
	for name, mut := range map[string]func(*marketplace.Config){
		"no id":           func(c *marketplace.Config) { c.ID = "" },
		"no token":        func(c *marketplace.Config) { c.Token = "" },
		"token space":     func(c *marketplace.Config) { c.Token = "ab cd" },
		"ftp":             func(c *marketplace.Config) { c.BaseURL = "ftp://x" },
		"user info":       func(c *marketplace.Config) { c.BaseURL = "https://u:p@x" },
		"negative":        func(c *marketplace.Config) { c.RequestTimeout = -1 },
		"unknown option":  func(c *marketplace.Config) { c.Options = map[string]string{"requests_per_second": "5"} },
		"period":          func(c *marketplace.Config) { c.Options = map[string]string{OptPeriodDays: "0"} },
		"milestone":       func(c *marketplace.Config) { c.Options = map[string]string{OptMilestonePct: "101"} },
		"jobs":            func(c *marketplace.Config) { c.Options = map[string]string{OptJobs: "3,x"} },
		"types":           func(c *marketplace.Config) { c.Options = map[string]string{OptProjectTypes: "contest"} },
		"lookback":        func(c *marketplace.Config) { c.Options = map[string]string{OptLookback: "-1s"} },
		"owner details":   func(c *marketplace.Config) { c.Options = map[string]string{OptOwnerDetails: "maybe"} },
		"full desc":       func(c *marketplace.Config) { c.Options = map[string]string{OptFullDescription: "2"} },
		"query too long":  func(c *marketplace.Config) { c.Options = map[string]string{OptQuery: strings.Repeat("q", 501)} },
		"base with query": func(c *marketplace.Config) { c.BaseURL = "https://x/?a=1" },
	} {
		c := base
		mut(&c)
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: want ErrConfig, got %v", name, err)
		} else if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "u:p") {
			t.Errorf("%s: error leaks a secret: %v", name, err)
		}
	}
}

func TestRegister(t *testing.T) {
	r := marketplace.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	a, err := r.New(AdapterName, marketplace.Config{ID: "fl", Token: testToken})
	if err != nil || a.ID() != "fl" {
		t.Fatalf("registry New: %v %v", a, err)
	}
}

func TestScanMapsProjects(t *testing.T) {
	f := newFakeServer(t)
	f.users[101] = map[string]any{
		"id":                  101,
		"employer_reputation": map[string]any{"entire_history": map[string]any{"overall": 4.6, "reviews": 12}},
		"location":            map[string]any{"country": map[string]any{"name": "Germany", "code": "de"}},
	}
	f.users[102] = map[string]any{"id": 102, "location": map[string]any{"country": map[string]any{"name": "Narnia"}}}
	fixed := project(1, 1_700_000_000)
	fixed.OwnerID = 101
	hourly := &fakeProject{ID: 2, OwnerID: 102, Title: "Hourly Go work", Type: "hourly", Currency: "eur", Min: 15, Max: 0,
		Submitted: 1_700_000_100, Seo: "", Jobs: []string{"Go", " ", "Docker"}, Status: "active", Preview: "preview only", Full: ""}
	noCurrency := project(3, 1_700_000_200)
	noCurrency.Currency = ""
	inr := project(4, 1_700_000_300)
	inr.Currency, inr.Min, inr.Max, inr.Seo = "INR", 12500, 37500, "../evil"
	f.add(fixed, hourly, noCurrency, inr)

	logs, observed := observer.New(zap.WarnLevel)
	a := f.adapter(t, nil)
	a.log = zap.New(logs)
	page, err := a.Scan(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Postings) != 3 {
		t.Fatalf("want 3 postings (one dropped), got %d: %+v", len(page.Postings), page.Postings)
	}
	if observed.Len() != 1 || !strings.Contains(observed.All()[0].ContextMap()["first"].([]any)[0].(string), "project 3") {
		t.Fatalf("dropped project not logged: %v", observed.All())
	}
	got := map[string]marketplace.Posting{}
	for _, p := range page.Postings {
		got[p.ID] = p
	}
	p1 := got["1"]
	want1 := marketplace.Posting{
		MarketplaceID: "freelancer", ID: "1", Title: "Project 1", Description: "the full description",
		Budget:   marketplace.Budget{Type: marketplace.BudgetFixed, Min: 100, Max: 500, Currency: "USD"},
		Skills:   []string{"Python"},
		URL:      f.hs.URL + "/projects/python/project-1",
		PostedAt: time.Unix(1_700_000_000, 0).UTC(),
		Client:   marketplace.Client{Rating: 4.6, Country: "DE"},
		Status:   marketplace.StatusOpen,
	}
	if !postingEqual(p1, want1) {
		t.Fatalf("fixed project:\n got %+v\nwant %+v", p1, want1)
	}
	p2 := got["2"]
	if p2.Budget != (marketplace.Budget{Type: marketplace.BudgetHourly, Min: 15, Max: 15, Currency: "EUR"}) ||
		p2.Description != "preview only" || strings.Join(p2.Skills, ",") != "Go,Docker" ||
		p2.URL != f.hs.URL+"/projects/2" || p2.Client != (marketplace.Client{Country: "Narnia"}) {
		t.Fatalf("hourly project: %+v", p2)
	}
	if p4 := got["4"]; p4.Budget.Currency != "INR" || p4.Budget.Min != 12500 || p4.URL != f.hs.URL+"/projects/4" {
		t.Fatalf("INR project: %+v", p4)
	}
	// Publication order.
	for i := 1; i < len(page.Postings); i++ {
		if page.Postings[i].PostedAt.Before(page.Postings[i-1].PostedAt) {
			t.Fatalf("postings not in publication order: %v", page.Postings)
		}
	}
}

func postingEqual(a, b marketplace.Posting) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestStatusMapping(t *testing.T) {
	for _, tc := range []struct{ status, want string }{{"active", "open"}, {"ACTIVE", "open"}, {"closed", "closed"}, {"frozen", "closed"}, {"", "closed"}} {
		body := `{"status":"success","result":{"projects":[{"id":7,"type":"fixed","status":"` + tc.status + `","currency":{"code":"USD"},"budget":{"minimum":10,"maximum":20}}]}}`
		page, err := decodeProjects("fl", "https://x", maxLimit, 200, nil, []byte(body), time.Now())
		if err != nil || len(page.postings) != 1 || string(page.postings[0].Status) != tc.want {
			t.Fatalf("status %q: %+v %v", tc.status, page, err)
		}
	}
}

func TestScanRequestShape(t *testing.T) {
	f := newFakeServer(t)
	f.add(project(1, 1_700_000_000))
	a := f.adapter(t, map[string]string{OptQuery: "golang api", OptJobs: "3,13", OptProjectTypes: "hourly"})
	if _, err := a.Scan(ctx, "", 25); err != nil {
		t.Fatal(err)
	}
	r := f.reqs()[0]
	q := r.URL.Query()
	if r.URL.Path != "/api/projects/0.1/projects/active/" || q.Get("limit") != "25" || q.Get("offset") != "0" || q.Has("from_time") ||
		q.Get("query") != "golang api" || strings.Join(q["jobs[]"], ",") != "3,13" || strings.Join(q["project_types[]"], ",") != "hourly" ||
		q.Get("job_details") != "true" || q.Get("full_description") != "true" || q.Get("user_details") != "true" ||
		q.Get("user_employer_reputation") != "true" || q.Get("user_country_details") != "true" {
		t.Fatalf("request: %s", r.URL)
	}
	if r.Header.Get("freelancer-oauth-v1") != testToken || r.Header.Get("Authorization") != "" {
		t.Fatalf("auth headers: %v", r.Header)
	}
	// Over the API's page size: clamped.
	if _, err := a.Scan(ctx, "", 1000); err != nil {
		t.Fatal(err)
	}
	if got := f.reqs()[1].URL.Query().Get("limit"); got != "100" {
		t.Fatalf("limit %s", got)
	}
}

// scanAll pages from cursor until caught up, calling between after each page.
func scanAll(t *testing.T, a *Adapter, cursor string, limit int, between func(page int)) (map[string]int, string) {
	t.Helper()
	seen := map[string]int{}
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("scan never caught up")
		}
		page, err := a.Scan(ctx, cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Postings {
			seen[p.ID]++
		}
		if len(page.Postings) == 0 || page.NextCursor == cursor {
			return seen, page.NextCursor
		}
		cursor = page.NextCursor
		if between != nil {
			between(i)
		}
	}
}

func TestScanNeverSkipsWhileProjectsComeAndGo(t *testing.T) {
	f := newFakeServer(t)
	const n = 300
	base := int64(1_700_000_000)
	for i := int64(1); i <= n; i++ {
		f.add(project(i, base+i*10))
	}
	a := f.adapter(t, nil)
	// Between pages: close a few projects ahead of and behind the scan,
	// publish new ones at the top (shifting every offset down).
	closedDuring := map[string]bool{}
	next := int64(n + 1)
	seen, cursor := scanAll(t, a, "", 40, func(page int) {
		if page >= 12 {
			return // let the scan catch up
		}
		for _, id := range []int64{int64(7 + page*13), int64(150 + page*3), int64(290 - page*11)} {
			if id >= 1 && id <= n {
				f.setStatus(id, "closed")
				closedDuring[itoa(id)] = true
			}
		}
		f.add(project(next, base+next*10), project(next+1, base+next*10))
		next += 2
	})
	for i := int64(1); i < next; i++ {
		if id := itoa(i); seen[id] == 0 && !closedDuring[id] {
			t.Fatalf("project %s was active throughout and never scanned", id)
		}
	}
	// Caught up: asking again returns the same cursor.
	page, err := a.Scan(ctx, cursor, 40)
	if err != nil || page.NextCursor != cursor {
		t.Fatalf("not caught up: %v, %q vs %q", err, page.NextCursor, cursor)
	}
	// New projects, including one index-lagged a little into the past.
	f.add(project(5000, base+next*10+100), project(5001, base+next*10-60))
	seen2, _ := scanAll(t, a, cursor, 40, nil)
	if seen2["5000"] == 0 || seen2["5001"] == 0 {
		t.Fatalf("new projects not found after catching up: %v", seen2)
	}
	if len(seen2) > 100 {
		t.Fatalf("the second scan re-read %d projects: the window did not move", len(seen2))
	}
}

func TestScanRestartsWhenTheOverlapIsLost(t *testing.T) {
	f := newFakeServer(t)
	for i := int64(1); i <= 60; i++ {
		f.add(project(i, 1_700_000_000+i))
	}
	a := f.adapter(t, nil)
	page, err := a.Scan(ctx, "", 20)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := decodeCursor(page.NextCursor)
	if cur.Offset != 20 || len(cur.Seen) != maxOverlap {
		t.Fatalf("cursor after first page: %+v", cur)
	}
	// Close the whole first page: every later project slides 20 places up,
	// past the overlap.
	for i := int64(41); i <= 60; i++ {
		f.setStatus(i, "closed")
	}
	page, err = a.Scan(ctx, page.NextCursor, 20)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ = decodeCursor(page.NextCursor)
	if cur.Offset != 0 || len(cur.Seen) != 0 {
		t.Fatalf("want a restarted sweep, got %+v", cur)
	}
	seen, _ := scanAll(t, a, page.NextCursor, 20, nil)
	for i := 1; i <= 40; i++ {
		if seen[itoa(int64(i))] == 0 {
			t.Fatalf("project %d skipped", i)
		}
	}
}

func TestScanWithoutFromTimeSupportStillCatchesUp(t *testing.T) {
	f := newFakeServer(t)
	f.ignoreFromTime = true
	for i := int64(1); i <= 30; i++ {
		f.add(project(i, 1_700_000_000+i*1000))
	}
	a := f.adapter(t, nil)
	seen, cursor := scanAll(t, a, "", 50, nil)
	if len(seen) != 30 || cursor == "" {
		t.Fatalf("seen %d, cursor %q", len(seen), cursor)
	}
}

func TestScanEmptyMarketplace(t *testing.T) {
	f := newFakeServer(t)
	page, err := f.adapter(t, nil).Scan(ctx, "", 10)
	if err != nil || len(page.Postings) != 0 || page.NextCursor != "" {
		t.Fatalf("empty: %+v %v", page, err)
	}
}

func TestCursor(t *testing.T) {
	c := cursorState{From: 1_700_000_000, Offset: 40, Seen: []int64{5, 6, 7}, High: 1_700_000_600}
	s := c.encode()
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			t.Fatalf("cursor not printable: %q", s)
		}
	}
	back, err := decodeCursor(s)
	if err != nil || !back.equal(c) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	enc := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
	f := newFakeServer(t)
	a := f.adapter(t, nil)
	for _, bad := range []string{
		"!!!", enc("[]"), enc(`{"v":2}`), enc(`{"v":1,"offset":-1}`), enc(`{"v":1,"offset":1,"seen":[1,2]}`),
		enc(`{"v":1,"offset":5,"seen":[0]}`), enc(`{"v":1,"extra":1}`), enc(`{"v":1}{"v":1}`), strings.Repeat("A", 3000),
	} {
		_, err := a.Scan(ctx, bad, 10)
		checkClass(t, err, marketplace.ErrPermanent, ReasonBadCursor)
	}
	if len(f.reqs()) != 0 {
		t.Fatal("a bad cursor was sent to the marketplace")
	}
}

func TestNextCursorIgnoresFutureTimestamps(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	page := projectsPage{ids: []int64{1, 2}, times: []time.Time{now.Add(-time.Minute), now.Add(48 * time.Hour)}}
	step := nextCursor(cursorState{}, 0, 10, page, now, 10*time.Minute)
	if step.state.High != now.Add(-time.Minute).Unix() || step.state.From != now.Add(-11*time.Minute).Unix() {
		t.Fatalf("future timestamp moved the window: %+v", step.state)
	}
}

func TestSelfResolvedOnceUnderConcurrency(t *testing.T) {
	f := newFakeServer(t)
	f.add(project(1, 1_700_000_000))
	a := f.adapter(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := a.FindBid(ctx, "1"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if f.selfCount() != 1 {
		t.Fatalf("GET /self called %d times", f.selfCount())
	}
}

func TestSelfFailureIsClassifiedAndNotCached(t *testing.T) {
	f := newFakeServer(t)
	f.add(project(1, 1_700_000_000))
	f.selfFail = 1
	a := f.adapter(t, nil)
	checkClass(t, a.PrepareBid(ctx), marketplace.ErrTransient, "http_500")
	if err := a.PrepareBid(ctx); err != nil {
		t.Fatal(err)
	}
	if f.selfCount() != 2 {
		t.Fatalf("self hits %d", f.selfCount())
	}
	if _, err := a.PlaceBid(ctx, "1", marketplace.Bid{Amount: 100, Proposal: "hi"}); err != nil {
		t.Fatal(err)
	}
}

// TestPlaceBidSendsTheBidAndNothingBefore (issue 13, item 7): the bidder's
// user ID is resolved by PrepareBid, before the worker claims the posting;
// PlaceBid makes one request, the bid, so nothing eats into the window
// between the worker's last lock check and the bid leaving. Unprepared, it
// sends nothing at all.
func TestPlaceBidSendsTheBidAndNothingBefore(t *testing.T) {
	f := newFakeServer(t)
	f.add(project(1, 1_700_000_000))
	a := f.adapter(t, nil)
	_, err := a.PlaceBid(ctx, "1", marketplace.Bid{Amount: 100, Proposal: "hi"})
	checkClass(t, err, marketplace.ErrTransient, ReasonNotSent)
	if n := len(f.reqs()); n != 0 {
		t.Fatalf("an unprepared PlaceBid made %d requests", n)
	}
	if err := a.PrepareBid(ctx); err != nil {
		t.Fatal(err)
	}
	before := len(f.reqs())
	if _, err := a.PlaceBid(ctx, "1", marketplace.Bid{Amount: 100, Proposal: "hi"}); err != nil {
		t.Fatal(err)
	}
	if reqs := f.reqs()[before:]; len(reqs) != 1 || reqs[0].Method != http.MethodPost {
		t.Fatalf("PlaceBid made %d requests, want only the bid's POST", len(reqs))
	}
}

func TestPlaceBidBodyAndHeaders(t *testing.T) {
	f := newFakeServer(t)
	f.add(project(77, 1_700_000_000))
	a := f.bidder(t, map[string]string{OptPeriodDays: "5", OptMilestonePct: "20"})
	var body map[string]any
	f.onPost = nil
	placed, err := a.PlaceBid(ctx, "77", marketplace.Bid{Amount: 123.5, Currency: "USD", Proposal: "I can do this.", IdempotencyKey: "bid-abc", FencingToken: 9})
	if err != nil {
		t.Fatal(err)
	}
	if placed.ID == "" || placed.PostingID != "77" || placed.Amount != 123.5 || placed.Currency != "USD" || placed.CreatedAt.IsZero() {
		t.Fatalf("placed: %+v", placed)
	}
	var post *http.Request
	for _, r := range f.reqs() {
		if r.Method == http.MethodPost {
			post = r
		}
	}
	if post.URL.Path != "/api/projects/0.1/bids/" || post.Header.Get("freelancer-oauth-v1") != testToken ||
		post.Header.Get("Content-Type") != "application/json" || post.Header.Get("Idempotency-Key") != "" {
		t.Fatalf("POST %s headers %v", post.URL, post.Header)
	}
	f.mu.Lock()
	b := f.bids[0]
	f.mu.Unlock()
	if b.ProjectID != 77 || b.BidderID != testSelfID || b.Amount != 123.5 || b.Period != 5 || b.Milestone != 20 || b.Description != "I can do this." {
		t.Fatalf("stored bid %+v", b)
	}
	// The exact JSON keys, from the docs.
	raw, _ := json.Marshal(wireBidRequest{ProjectID: 1, BidderID: 2, Amount: 3, Period: 4, MilestonePercentage: 5, Description: "d"})
	_ = json.Unmarshal(raw, &body)
	for _, k := range []string{"project_id", "bidder_id", "amount", "period", "milestone_percentage", "description"} {
		if _, ok := body[k]; !ok {
			t.Fatalf("body lacks %q: %s", k, raw)
		}
	}
	if len(body) != 6 {
		t.Fatalf("unexpected body keys: %s", raw)
	}
}

func TestPlaceBidRefusesBadInput(t *testing.T) {
	f := newFakeServer(t)
	a := f.bidder(t, nil)
	prepared := len(f.reqs())
	for _, id := range []string{"", "abc", "0", "-1", "01", "1/2", "99999999999999999999"} {
		_, err := a.PlaceBid(ctx, id, marketplace.Bid{Amount: 1})
		checkClass(t, err, marketplace.ErrPermanent, ReasonInvalidInput)
		_, _, err = a.FindBid(ctx, id)
		checkClass(t, err, marketplace.ErrPermanent, ReasonInvalidInput)
	}
	for _, amt := range []float64{0, -5} {
		_, err := a.PlaceBid(ctx, "1", marketplace.Bid{Amount: amt})
		checkClass(t, err, marketplace.ErrPermanent, ReasonInvalidBid)
	}
	if len(f.reqs()) != prepared {
		t.Fatal("bad input reached the marketplace")
	}
}

func TestFindBid(t *testing.T) {
	f := newFakeServer(t)
	f.add(project(5, 1_700_000_000), project(6, 1_700_000_000))
	a := f.adapter(t, nil)
	if _, found, err := a.FindBid(ctx, "5"); err != nil || found {
		t.Fatalf("before bidding: found=%v err=%v", found, err)
	}
	f.mu.Lock()
	f.bids = append(f.bids,
		fakeBid{ID: 50, ProjectID: 5, BidderID: 999, Amount: 1, Submitted: 1},        // someone else's
		fakeBid{ID: 61, ProjectID: 6, BidderID: testSelfID, Amount: 2, Submitted: 5}, // another project
		fakeBid{ID: 52, ProjectID: 5, BidderID: testSelfID, Amount: 80, Submitted: 10, Retracted: true},
	)
	f.mu.Unlock()
	got, found, err := a.FindBid(ctx, "5")
	if err != nil || !found || got.ID != "52" || got.PostingID != "5" || got.Amount != 80 || !got.CreatedAt.Equal(time.Unix(10, 0)) {
		t.Fatalf("found=%v %+v %v", found, got, err)
	}
	last := f.reqs()[len(f.reqs())-1].URL.Query()
	if last.Get("projects[]") != "5" || last.Get("bidders[]") != "4242" {
		t.Fatalf("FindBid query %v", last)
	}
	// A server that ignores the filters must not make others' bids ours.
	res := `{"status":"success","result":{"bids":[{"id":1,"project_id":5,"bidder_id":7},{"id":2,"project_id":9,"bidder_id":4242}]}}`
	if _, found, err := decodeFindBid(5, testSelfID, 200, nil, []byte(res), time.Now()); err != nil || found {
		t.Fatalf("filtered: found=%v err=%v", found, err)
	}
}

// errorServer answers every API call but GET /self with one canned answer.
func errorServer(t *testing.T, status int, header map[string]string, body string) *Adapter {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pathSelf {
			success(w, map[string]any{"id": testSelfID})
			return
		}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(hs.Close)
	// Every answer here comes at once; the timeout only has to outlast
	// decoding an 8 MiB one under -race on a loaded machine (1 s did not).
	a, err := NewAdapter(marketplace.Config{ID: "freelancer", BaseURL: hs.URL, Token: testToken, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PrepareBid(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

func envBody(code, msg string) string {
	b, _ := json.Marshal(map[string]any{"status": "error", "message": msg, "error_code": code, "request_id": "r1"})
	return string(b)
}

func TestErrorClasses(t *testing.T) {
	type want struct {
		class  error
		reason string
	}
	for _, tc := range []struct {
		name         string
		status       int
		header       map[string]string
		body         string
		scan, bid    want
		retryAfter   time.Duration
		wantExisting bool
	}{
		{name: "401", status: 401, body: envBody("RestExceptionCodes.NOT_AUTHENTICATED", "no"),
			scan: want{marketplace.ErrPermanent, ReasonUnauthorized}, bid: want{marketplace.ErrPermanent, ReasonUnauthorized}},
		{name: "403 plain", status: 403, body: envBody("", "forbidden"),
			scan: want{marketplace.ErrPermanent, ReasonUnauthorized}, bid: want{marketplace.ErrPermanent, ReasonUnauthorized}},
		{name: "403 balance", status: 403, body: envBody("ProjectExceptionCodes.BID_MINIMUM_REQUIREMENT_NOT_MET", "needs $19"),
			scan: want{marketplace.ErrPermanent, ReasonNotEligible}, bid: want{marketplace.ErrPermanent, ReasonNotEligible}},
		{name: "404", status: 404, body: envBody("ProjectExceptionCodes.PROJECT_NOT_FOUND", "gone"),
			scan: want{marketplace.ErrPermanent, ReasonNotFound}, bid: want{marketplace.ErrPermanent, ReasonNotFound}},
		{name: "429", status: 429, header: map[string]string{"Retry-After": "7"}, body: envBody("TOO_MANY_REQUESTS", "slow"),
			scan: want{marketplace.ErrRateLimited, ReasonRateLimited}, bid: want{marketplace.ErrRateLimited, ReasonRateLimited}, retryAfter: 7 * time.Second},
		{name: "bid limit", status: 409, body: envBody("ProjectExceptionCodes.BID_LIMIT_EXCEEDED", "no bids left"),
			scan: want{marketplace.ErrRateLimited, "bid_limit_exceeded"}, bid: want{marketplace.ErrRateLimited, "bid_limit_exceeded"}, retryAfter: time.Hour},
		{name: "closed", status: 400, body: envBody("ProjectExceptionCodes.PROJECT_NOT_ACTIVE", "closed"),
			scan: want{marketplace.ErrPermanent, ReasonBadRequest}, bid: want{marketplace.ErrPostingClosed, ReasonClosed}},
		{name: "already bid", status: 409, body: envBody("ProjectExceptionCodes.DUPLICATE_BID", "You have already bid on that project."),
			scan: want{marketplace.ErrPermanent, ReasonBadRequest}, bid: want{marketplace.ErrAlreadyBid, ReasonAlreadyBid}},
		{name: "validation", status: 400, body: envBody("ProjectExceptionCodes.INVALID_BID_AMOUNT", "amount out of range"),
			scan: want{marketplace.ErrPermanent, ReasonBadRequest}, bid: want{marketplace.ErrPermanent, ReasonInvalidBid}},
		{name: "email in description", status: 400, body: envBody("ProjectExceptionCodes.BID_DESCRIPTION_CONTAINS_EMAIL", "no emails"),
			scan: want{marketplace.ErrPermanent, ReasonInvalidBid}, bid: want{marketplace.ErrPermanent, ReasonInvalidBid}},
		{name: "422 no body", status: 422, body: "",
			scan: want{marketplace.ErrPermanent, ReasonBadRequest}, bid: want{marketplace.ErrPermanent, ReasonInvalidBid}},
		{name: "500", status: 500, body: envBody("", "oops"),
			scan: want{marketplace.ErrTransient, "http_500"}, bid: want{marketplace.ErrAmbiguous, "http_500"}},
		{name: "503 html", status: 503, body: "<html>down</html>",
			scan: want{marketplace.ErrTransient, "http_503"}, bid: want{marketplace.ErrAmbiguous, "http_503"}},
		{name: "200 malformed", status: 200, body: `{"status":"succ`,
			scan: want{marketplace.ErrTransient, ReasonMalformed}, bid: want{marketplace.ErrAmbiguous, ReasonMalformed}},
		{name: "200 error envelope", status: 200, body: envBody("SOMETHING", "hm"),
			scan: want{marketplace.ErrPermanent, ReasonInvalid}, bid: want{marketplace.ErrAmbiguous, ReasonInvalid}},
		{name: "200 wrong shape", status: 200, body: `{"status":"success","result":{"projects":"no","id":"x"}}`,
			scan: want{marketplace.ErrPermanent, ReasonInvalid}, bid: want{marketplace.ErrAmbiguous, ReasonInvalid}},
		{name: "302", status: 302, header: map[string]string{"Location": "https://elsewhere.example/"}, body: "",
			scan: want{marketplace.ErrPermanent, ReasonUnexpected}, bid: want{marketplace.ErrAmbiguous, ReasonUnexpected}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := errorServer(t, tc.status, tc.header, tc.body)
			_, err := a.Scan(ctx, "", 10)
			me := checkClass(t, err, tc.scan.class, tc.scan.reason)
			if tc.retryAfter > 0 && me.RetryAfter != tc.retryAfter {
				t.Fatalf("scan RetryAfter %s", me.RetryAfter)
			}
			_, err = a.PlaceBid(ctx, "12", marketplace.Bid{Amount: 10, Proposal: "p"})
			me = checkClass(t, err, tc.bid.class, tc.bid.reason)
			if tc.retryAfter > 0 && me.RetryAfter != tc.retryAfter {
				t.Fatalf("bid RetryAfter %s", me.RetryAfter)
			}
		})
	}
}

func TestAlreadyBidCarriesTheExistingBid(t *testing.T) {
	f := newFakeServer(t)
	f.add(project(8, 1_700_000_000))
	a := f.bidder(t, nil)
	if _, err := a.PlaceBid(ctx, "8", marketplace.Bid{Amount: 10, Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	f.closeOnPost = nil
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			apiError(w, 400, "ProjectExceptionCodes.DUPLICATE_BID", "You have already bid on that project.")
			return
		}
		f.serve(w, r)
	}))
	t.Cleanup(hs.Close)
	b, _ := NewAdapter(marketplace.Config{ID: "freelancer", BaseURL: hs.URL, Token: testToken})
	if err := b.PrepareBid(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := b.PlaceBid(ctx, "8", marketplace.Bid{Amount: 10})
	checkClass(t, err, marketplace.ErrAlreadyBid, ReasonAlreadyBid)
	ex, ok := marketplace.ExistingBid(err)
	if !ok || ex.PostingID != "8" || ex.ID == "" {
		t.Fatalf("existing bid %+v %v", ex, ok)
	}
}

func TestDroppedConnectionAfterThePostIsAmbiguousAndNotResent(t *testing.T) {
	f := newFakeServer(t)
	f.add(project(9, 1_700_000_000))
	f.onPost = func(int64, int) fault { return faultStoreDrop }
	a := f.bidder(t, nil)
	// Warm a keep-alive connection so the POST goes out on a reused one,
	// the case in which net/http would otherwise resend.
	if _, _, err := a.FindBid(ctx, "9"); err != nil {
		t.Fatal(err)
	}
	_, err := a.PlaceBid(ctx, "9", marketplace.Bid{Amount: 10})
	checkClass(t, err, marketplace.ErrAmbiguous, ReasonNoAnswer)
	if f.postCount() != 1 || f.bidsOn(9) != 1 {
		t.Fatalf("posts %d, bids %d: the POST was resent", f.postCount(), f.bidsOn(9))
	}
	// Reconciliation finds it.
	got, found, err := a.FindBid(ctx, "9")
	if err != nil || !found || got.PostingID != "9" {
		t.Fatalf("reconcile: %+v %v %v", got, found, err)
	}
	// The other fault answers.
	for _, ft := range []fault{faultStore502, faultMalformed200} {
		f.onPost = func(int64, int) fault { return ft }
		_, err := a.PlaceBid(ctx, "9", marketplace.Bid{Amount: 10})
		checkClass(t, err, marketplace.ErrAmbiguous, "")
	}
}

func TestTransportFailures(t *testing.T) {
	// Nothing listens: the bid was never sent.
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	a, _ := NewAdapter(marketplace.Config{ID: "freelancer", BaseURL: url, Token: testToken, RequestTimeout: time.Second})
	a.selfID = testSelfID
	_, err := a.PlaceBid(ctx, "1", marketplace.Bid{Amount: 10})
	checkClass(t, err, marketplace.ErrTransient, ReasonNotSent)
	_, err = a.Scan(ctx, "", 10)
	checkClass(t, err, marketplace.ErrTransient, ReasonNoAnswer)

	// A server that reads the bid and never answers: timeout, ambiguous.
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pathSelf {
			success(w, map[string]any{"id": testSelfID})
			return
		}
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(block); slow.Close() })
	b, _ := NewAdapter(marketplace.Config{ID: "freelancer", BaseURL: slow.URL, Token: testToken, RequestTimeout: 200 * time.Millisecond})
	if err := b.PrepareBid(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = b.PlaceBid(ctx, "1", marketplace.Bid{Amount: 10})
	checkClass(t, err, marketplace.ErrAmbiguous, ReasonNoAnswer)
	_, _, err = b.FindBid(ctx, "1")
	checkClass(t, err, marketplace.ErrTransient, ReasonNoAnswer)

	// Over the size cap.
	big := errorServer(t, 200, nil, `{"status":"success","result":{"projects":[],"pad":"`+strings.Repeat("x", MaxAnswerBytes)+`"}}`)
	_, err = big.Scan(ctx, "", 10)
	checkClass(t, err, marketplace.ErrTransient, ReasonTooLarge)
	_, err = big.PlaceBid(ctx, "1", marketplace.Bid{Amount: 10})
	checkClass(t, err, marketplace.ErrAmbiguous, ReasonTooLarge)
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "-3": 0, "12": 12 * time.Second, "99999999999": maxRetryAfter, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

func TestTokenNeverLogged(t *testing.T) {
	f := newFakeServer(t)
	f.add(project(1, 1_700_000_000))
	core, observed := observer.New(zap.DebugLevel)
	a, err := NewAdapter(marketplace.Config{ID: "freelancer", BaseURL: f.hs.URL, Token: testToken, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	f.onPost = func(int64, int) fault { return faultStoreDrop }
	_, _ = a.Scan(ctx, "!!", 10)
	_, _ = a.Scan(ctx, "", 10)
	_, _ = a.PlaceBid(ctx, "1", marketplace.Bid{Amount: 1})
	for _, e := range observed.All() {
		if strings.Contains(e.Message, testToken) {
			t.Fatal("token logged")
		}
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, testToken) {
				t.Fatal("token logged")
			}
		}
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// TestErrorCodeTable pins the table against the one in docs/freelancer.md
// and checks every entry says where it comes from.
func TestErrorCodeTable(t *testing.T) {
	want := map[string]error{
		"DUPLICATE_BID": marketplace.ErrAlreadyBid, "ALREADY_BID_ON_PROJECT": marketplace.ErrAlreadyBid,
		"PROJECT_NOT_ACTIVE": marketplace.ErrPostingClosed, "PROJECT_CLOSED": marketplace.ErrPostingClosed, "PROJECT_ENDED": marketplace.ErrPostingClosed,
		"PROJECT_NOT_FOUND": marketplace.ErrPermanent, "NOT_FOUND": marketplace.ErrPermanent, "BID_DESCRIPTION_CONTAINS_EMAIL": marketplace.ErrPermanent,
		"BID_MINIMUM_REQUIREMENT_NOT_MET": marketplace.ErrPermanent, "RESTRICTED_FROM_BIDDING_PREMIUM_VERIFIED": marketplace.ErrPermanent,
		"RESTRICTED_FROM_BIDDING_ON_FEATURED": marketplace.ErrPermanent, "TOO_MANY_REQUESTS": marketplace.ErrRateLimited,
		"BID_TOO_EARLY": marketplace.ErrRateLimited, "BID_LIMIT_EXCEEDED": marketplace.ErrRateLimited,
		"NOT_AUTHENTICATED": marketplace.ErrPermanent, "UNAUTHORIZED": marketplace.ErrPermanent, "BAD_FORM": marketplace.ErrPermanent,
	}
	for code, class := range want {
		r, ok := errorCodeRule(code)
		if !ok || r.class != class || (r.seen != "observed" && r.seen != "guess") || r.reason == "" {
			t.Errorf("%s: %+v %v", code, r, ok)
		}
		if r2, ok := lookupCode("ProjectExceptionCodes."+strings.ToLower(code), true); !ok || r2 != r {
			t.Errorf("%s: namespaced lower-case lookup %+v %v", code, r2, ok)
		}
	}
	if _, ok := errorCodeRule("SOMETHING_NEW"); ok {
		t.Fatal("unknown code matched")
	}
}
