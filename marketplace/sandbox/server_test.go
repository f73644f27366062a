package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bidder/bidder/internal/wait"
)

func bidBody(amount float64, currency string, fence int64) wireBidRequest {
	return wireBidRequest{Amount: amount, Currency: currency, Proposal: "I can do this.", FencingToken: fence}
}

func TestCursorNeverSkipsOrRepeatsUnderConcurrentPublishing(t *testing.T) {
	s, hs := startServer(t, ServerConfig{})
	const publishers, perPublisher = 4, 300
	const total = publishers * perPublisher

	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range perPublisher {
				s.Publish(1)
			}
		})
	}
	published := make(chan struct{})
	go func() { wg.Wait(); close(published) }()

	var seen []string
	cursor := ""
	done := false
	for i := 0; len(seen) < total; i++ {
		select {
		case <-published:
			done = true
		default:
		}
		q := url.Values{"limit": {fmt.Sprint(1 + i%7)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		a := do(t, "GET", hs.URL+"/v1/postings?"+q.Encode(), testToken, "", nil)
		if a.status != http.StatusOK {
			t.Fatalf("page: %d %s", a.status, a.body)
		}
		page := decodeInto[wirePage](t, a)
		for _, p := range page.Postings {
			seen = append(seen, p.ID)
		}
		if len(page.Postings) == 0 && page.NextCursor != cursor && cursor != "" {
			t.Fatalf("empty page moved the cursor from %q to %q", cursor, page.NextCursor)
		}
		cursor = page.NextCursor
		if done && len(page.Postings) == 0 && len(seen) < total {
			t.Fatalf("caught up after all publishing with only %d of %d postings", len(seen), total)
		}
	}
	if len(seen) != total {
		t.Fatalf("saw %d postings, published %d", len(seen), total)
	}
	for i, id := range seen {
		if want := postingID(uint64(i + 1)); id != want {
			t.Fatalf("posting #%d is %s, want %s (skipped or repeated)", i, id, want)
		}
	}
}

func TestNoCursorStartsAtOldestOpenPosting(t *testing.T) {
	clock := newFakeClock()
	s, hs := startServer(t, ServerConfig{CloseAfter: time.Minute, Now: clock.Now, Postings: 3})
	clock.Advance(2 * time.Minute) // the first three are closed now
	ids := s.Publish(2)

	page := decodeInto[wirePage](t, do(t, "GET", hs.URL+"/v1/postings", testToken, "", nil))
	if len(page.Postings) != 2 || page.Postings[0].ID != ids[0] || page.Postings[1].ID != ids[1] {
		t.Fatalf("no-cursor page = %+v, want the two open postings %v", page.Postings, ids)
	}
	// An explicit cursor still sees closed postings, with their status.
	first := decodeInto[wirePage](t, do(t, "GET", hs.URL+"/v1/postings?limit=1&cursor="+encodeCursor(0), testToken, "", nil))
	if len(first.Postings) != 1 || first.Postings[0].Status != "closed" {
		t.Fatalf("page from cursor 0 = %+v, want one closed posting", first.Postings)
	}
	if st := s.Stats(); st.Postings != 5 || st.OpenPostings != 2 {
		t.Fatalf("stats = %+v, want 5 postings, 2 open", st)
	}

	// Bids on a closed posting get 410.
	a := do(t, "POST", hs.URL+"/v1/postings/"+first.Postings[0].ID+"/bids", testToken, "k1", bidBody(10, first.Postings[0].Budget.Currency, 1))
	if a.status != http.StatusGone || !strings.Contains(string(a.body), codeClosed) {
		t.Fatalf("bid on closed posting: %d %s", a.status, a.body)
	}
}

func TestCaughtUpReturnsSameCursor(t *testing.T) {
	_, hs := startServer(t, ServerConfig{Postings: 2})
	p1 := decodeInto[wirePage](t, do(t, "GET", hs.URL+"/v1/postings", testToken, "", nil))
	p2 := decodeInto[wirePage](t, do(t, "GET", hs.URL+"/v1/postings?cursor="+p1.NextCursor, testToken, "", nil))
	if len(p1.Postings) != 2 || len(p2.Postings) != 0 || p2.NextCursor != p1.NextCursor {
		t.Fatalf("first page %d postings cursor %q; second %d postings cursor %q", len(p1.Postings), p1.NextCursor, len(p2.Postings), p2.NextCursor)
	}
}

func TestBadCursorAndLimit(t *testing.T) {
	_, hs := startServer(t, ServerConfig{Postings: 3})
	for _, q := range []string{
		"limit=0", "limit=501", "limit=abc", "limit=", "limit=-1",
		"cursor=garbage!", "cursor=" + encodeCursor(4), // ahead of the newest
		"cursor=" + url.QueryEscape("czEuMDA3"), // "s1.007": not canonical
	} {
		a := do(t, "GET", hs.URL+"/v1/postings?"+q, testToken, "", nil)
		e := decodeInto[wireError](t, a)
		if a.status != http.StatusBadRequest || e.Error != codeBadRequest || e.Detail == "" {
			t.Errorf("%s: %d %s, want 400 bad_request with detail", q, a.status, a.body)
		}
	}
	for _, q := range []string{"limit=1", "limit=500", "cursor=" + encodeCursor(3)} {
		if a := do(t, "GET", hs.URL+"/v1/postings?"+q, testToken, "", nil); a.status != http.StatusOK {
			t.Errorf("%s: %d %s, want 200", q, a.status, a.body)
		}
	}
}

func TestAuth(t *testing.T) {
	_, hs := startServer(t, ServerConfig{Tokens: []string{testToken, "tok-a", "tok-b"}, Postings: 1})
	for _, tok := range []string{"", "nope"} {
		a := do(t, "GET", hs.URL+"/v1/postings", tok, "", nil)
		if a.status != http.StatusUnauthorized || strings.TrimSpace(string(a.body)) != `{"error":"unauthorized"}` {
			t.Errorf("token %q: %d %s", tok, a.status, a.body)
		}
	}
	// Two tokens are two accounts: B may bid where A did, even when
	// duplicates are rejected.
	body := bidBody(100, mustPosting(t, hs.URL, "p-000001").Budget.Currency, 1)
	for _, tok := range []string{"tok-a", "tok-b"} {
		if a := do(t, "POST", hs.URL+"/v1/postings/p-000001/bids", tok, "key-"+tok, body); a.status != http.StatusCreated {
			t.Fatalf("bid by %s: %d %s", tok, a.status, a.body)
		}
	}
	bids := decodeInto[wireBids](t, do(t, "GET", hs.URL+"/v1/bids?posting_id=p-000001", "tok-b", "", nil))
	if len(bids.Bids) != 1 || bids.Bids[0].IdempotencyKey != "key-tok-b" {
		t.Fatalf("tok-b's bids = %+v, want only its own", bids.Bids)
	}
}

func mustPosting(t testing.TB, base, id string) wirePosting {
	t.Helper()
	a := do(t, "GET", base+"/v1/postings/"+id, testToken, "", nil)
	if a.status != http.StatusOK {
		t.Fatalf("get %s: %d %s", id, a.status, a.body)
	}
	return decodeInto[wirePosting](t, a)
}

func TestConcurrentDuplicatesAreCountedExactly(t *testing.T) {
	const n = 25
	_, hs := startServer(t, ServerConfig{Postings: 1, Idempotency: IdempotencyOff, Duplicates: DuplicatesAccept})
	cur := mustPosting(t, hs.URL, "p-000001").Budget.Currency

	start := make(chan struct{})
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			// The same key every time: with idempotency off it must not help.
			statuses <- do(t, "POST", hs.URL+"/v1/postings/p-000001/bids", testToken, "same-key", bidBody(50, cur, 1)).status
		})
	}
	close(start)
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusCreated {
			t.Fatalf("status %d, want every bid created", st)
		}
	}
	st := fetchStats(t, hs.URL)
	want := Stats{Postings: 1, OpenPostings: 1, Bids: n, PostingsWithMultipleBids: 1, DuplicateBids: n - 1}
	if st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}
}

func TestIdempotentReplayReturnsOriginalBid(t *testing.T) {
	s, hs := startServer(t, ServerConfig{Postings: 1})
	cur := mustPosting(t, hs.URL, "p-000001").Budget.Currency
	first := do(t, "POST", hs.URL+"/v1/postings/p-000001/bids", testToken, "k", bidBody(50, cur, 1))
	if first.status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	second := do(t, "POST", hs.URL+"/v1/postings/p-000001/bids", testToken, "k", bidBody(50, cur, 1))
	if second.status != http.StatusOK {
		t.Fatalf("replay: %d %s", second.status, second.body)
	}
	b1, b2 := decodeInto[wireBidAnswer](t, first).Bid, decodeInto[wireBidAnswer](t, second).Bid
	if b1 == nil || b2 == nil || *b1 != *b2 {
		t.Fatalf("replay gave %+v, original %+v", b2, b1)
	}
	// A new key is a second bid by the same account: 409 with the original.
	third := do(t, "POST", hs.URL+"/v1/postings/p-000001/bids", testToken, "k2", bidBody(50, cur, 1))
	ans := decodeInto[wireBidAnswer](t, third)
	if third.status != http.StatusConflict || ans.Error != codeAlreadyBid || ans.Bid == nil || ans.Bid.ID != b1.ID {
		t.Fatalf("second key: %d %s, want 409 already_bid with %s", third.status, third.body, b1.ID)
	}
	want := Stats{Postings: 1, OpenPostings: 1, Bids: 1, IdempotentReplays: 1, RejectedDuplicates: 1}
	if st := s.Stats(); st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}
}

func TestStaleFenceBidsCounted(t *testing.T) {
	s, hs := startServer(t, ServerConfig{Postings: 1, Idempotency: IdempotencyOff, Duplicates: DuplicatesAccept})
	cur := mustPosting(t, hs.URL, "p-000001").Budget.Currency
	for i, fence := range []int64{5, 3, 7, 6, 7} {
		if a := do(t, "POST", hs.URL+"/v1/postings/p-000001/bids", testToken, fmt.Sprint("k", i), bidBody(50, cur, fence)); a.status != http.StatusCreated {
			t.Fatalf("bid %d: %d %s", i, a.status, a.body)
		}
	}
	// 3 < 5 and 6 < 7 are stale; an equal token (7 after 7) is not.
	if st := s.Stats(); st.StaleFenceBids != 2 || st.DuplicateBids != 4 || st.Bids != 5 {
		t.Fatalf("stats = %+v, want 2 stale, 4 duplicates, 5 bids", st)
	}
}

func TestInvalidBids(t *testing.T) {
	_, hs := startServer(t, ServerConfig{Postings: 1})
	cur := mustPosting(t, hs.URL, "p-000001").Budget.Currency
	other := "XXX"
	cases := []struct {
		name string
		key  string
		body any
	}{
		{"missing key", "", bidBody(10, cur, 1)},
		{"zero amount", "k", bidBody(0, cur, 1)},
		{"negative amount", "k", bidBody(-5, cur, 1)},
		{"empty proposal", "k", wireBidRequest{Amount: 10, Currency: cur, Proposal: "  "}},
		{"wrong currency", "k", bidBody(10, other, 1)},
		{"not an object", "k", []int{1, 2}},
		{"key too long", strings.Repeat("k", 129), bidBody(10, cur, 1)},
	}
	for _, c := range cases {
		a := do(t, "POST", hs.URL+"/v1/postings/p-000001/bids", testToken, c.key, c.body)
		e := decodeInto[wireError](t, a)
		if a.status != http.StatusUnprocessableEntity || e.Error != codeInvalidBid || e.Detail == "" {
			t.Errorf("%s: %d %s, want 422 invalid_bid with detail", c.name, a.status, a.body)
		}
	}
	if a := do(t, "POST", hs.URL+"/v1/postings/p-999999/bids", testToken, "k", bidBody(10, cur, 1)); a.status != http.StatusNotFound {
		t.Errorf("unknown posting: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", hs.URL+"/v1/postings/p-999999", testToken, "", nil); a.status != http.StatusNotFound || decodeInto[wireError](t, a).Error != codeNotFound {
		t.Errorf("get unknown posting: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", hs.URL+"/v1/bids", testToken, "", nil); a.status != http.StatusBadRequest {
		t.Errorf("bids without posting_id: %d %s", a.status, a.body)
	}
}

func TestFaultsAtFullRate(t *testing.T) {
	t.Run("error_rate", func(t *testing.T) {
		s, hs := startServer(t, ServerConfig{Postings: 1, ErrorRate: 1})
		a := do(t, "POST", hs.URL+"/v1/postings/p-000001/bids", testToken, "k", bidBody(10, "USD", 1))
		if a.status != http.StatusServiceUnavailable || s.Stats().Bids != 0 {
			t.Fatalf("%d %s, bids %d: want 503 and nothing stored", a.status, a.body, s.Stats().Bids)
		}
		// The referee endpoint is exempt.
		if st := fetchStats(t, hs.URL); st.Postings != 1 {
			t.Fatalf("stats under error_rate=1: %+v", st)
		}
	})
	t.Run("rate_limit_rate", func(t *testing.T) {
		_, hs := startServer(t, ServerConfig{Postings: 1, RateLimitRate: 1, RetryAfter: 1500 * time.Millisecond})
		a := do(t, "GET", hs.URL+"/v1/postings", testToken, "", nil)
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "2" {
			t.Fatalf("%d Retry-After=%q %s, want 429 with Retry-After 2", a.status, a.header.Get("Retry-After"), a.body)
		}
	})
	t.Run("latency", func(t *testing.T) {
		_, hs := startServer(t, ServerConfig{Postings: 1, Latency: Latency{Min: 30 * time.Millisecond, Max: 40 * time.Millisecond}})
		start := time.Now()
		do(t, "GET", hs.URL+"/v1/postings", testToken, "", nil)
		if d := time.Since(start); d < 30*time.Millisecond {
			t.Fatalf("answer took %s, want at least 30ms", d)
		}
	})
	t.Run("ambiguous_rate", func(t *testing.T) {
		s, hs := startServer(t, ServerConfig{Postings: 40, AmbiguousRate: 1, Seed: 7})
		for i := 1; i <= 40; i++ {
			id := postingID(uint64(i))
			cur := mustPosting(t, hs.URL, id).Budget.Currency
			req, _ := http.NewRequest("POST", hs.URL+"/v1/postings/"+id+"/bids",
				strings.NewReader(fmt.Sprintf(`{"amount":10,"currency":%q,"proposal":"x","fencing_token":1}`, cur)))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Idempotency-Key", "k-"+id)
			// Without this net/http silently resends a POST carrying an
			// Idempotency-Key when the connection drops, and gets the replay.
			req.GetBody = nil
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusGatewayTimeout {
					t.Fatalf("bid %s: %d, want 504 or a dropped connection", id, resp.StatusCode)
				}
			}
		}
		if st := s.Stats(); st.Bids != 40 {
			t.Fatalf("bids stored = %d, want all 40 despite the ambiguous answers", st.Bids)
		}
		if s.faults.ambiguous504.Load() == 0 || s.faults.ambiguousDrops.Load() == 0 {
			t.Fatalf("504s %d, drops %d: want both kinds", s.faults.ambiguous504.Load(), s.faults.ambiguousDrops.Load())
		}
	})
}

func TestPostingsRepeatForASeed(t *testing.T) {
	a1, _ := NewServer(ServerConfig{Tokens: []string{"t"}, Postings: 50, Seed: 42})
	a2, _ := NewServer(ServerConfig{Tokens: []string{"t"}, Postings: 50, Seed: 42})
	b, _ := NewServer(ServerConfig{Tokens: []string{"t"}, Postings: 50, Seed: 43})
	same, differ := 0, 0
	for i := range 50 {
		p1, p2, p3 := a1.postings.all[i].p, a2.postings.all[i].p, b.postings.all[i].p
		p1.PostedAt, p2.PostedAt, p3.PostedAt = time.Time{}, time.Time{}, time.Time{}
		if fmt.Sprint(p1) == fmt.Sprint(p2) {
			same++
		}
		if fmt.Sprint(p1) != fmt.Sprint(p3) {
			differ++
		}
	}
	if same != 50 || differ < 45 {
		t.Fatalf("same seed: %d/50 equal; other seed: %d/50 differ", same, differ)
	}
}

func TestGeneratedPostingsAreVaried(t *testing.T) {
	s, _ := NewServer(ServerConfig{Tokens: []string{"t"}, Postings: 2000, Seed: 1})
	currencies, types, countries := map[string]int{}, map[string]int{}, map[string]int{}
	keywords := map[string]int{"in-person": 0, "video call": 0, "python": 0, "data": 0, "report": 0, "deliver": 0}
	newClients, highRated := 0, 0
	for _, sp := range s.postings.all {
		p := sp.p
		if !validID(p.ID) || p.Title == "" || p.Budget.Min <= 0 || p.Budget.Max < p.Budget.Min || len(p.Skills) < 2 {
			t.Fatalf("bad posting %+v", p)
		}
		currencies[p.Budget.Currency]++
		types[p.Budget.Type]++
		countries[p.Client.Country]++
		text := strings.ToLower(p.Title + " " + p.Description + " " + strings.Join(p.Skills, " "))
		for k := range keywords {
			if strings.Contains(text, k) {
				keywords[k]++
			}
		}
		if p.Client.Rating == 0 {
			newClients++
		} else if p.Client.Rating >= 4.5 {
			highRated++
		}
	}
	if currencies["USD"] < 1000 || len(currencies) < 4 {
		t.Errorf("currencies %v: want mostly USD and several others", currencies)
	}
	if types["fixed"] < 400 || types["hourly"] < 400 {
		t.Errorf("budget types %v", types)
	}
	if len(countries) < 10 {
		t.Errorf("countries %v", countries)
	}
	for k, n := range keywords {
		if n < 40 || n > 1900 {
			t.Errorf("keyword %q in %d of 2000 postings: rules need it in some, not all", k, n)
		}
	}
	if newClients < 100 || highRated < 300 {
		t.Errorf("new clients %d, rated >= 4.5 %d", newClients, highRated)
	}
}

func TestGeneratePublishesAtRateUntilStopped(t *testing.T) {
	s, _ := startServer(t, ServerConfig{Rate: 2000})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Generate(ctx) }()
	wait.Until(t, 10*time.Second, "50 generated postings", func() bool { return s.postings.count() >= 50 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Generate did not return after cancel")
	}
	n := s.postings.count()
	// Nothing is published once Generate has returned.
	if s.Stats().Postings != int64(n) {
		t.Fatalf("postings changed after stop")
	}

	// Close stops a running generator too.
	go func() { done <- s.Generate(context.Background()) }()
	wait.Until(t, 10*time.Second, "generator to publish again", func() bool { return s.postings.count() > n })
	s.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Generate did not return after Close")
	}
}
