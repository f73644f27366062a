package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// Broken servers: every answer the contract does not allow must come back as
// a classified error, never a panic or a fabricated value.

const validBidJSON = `{"bid":{"id":"b-1","posting_id":"p-1","amount":10,"currency":"USD","proposal":"x","fencing_token":1,"idempotency_key":"k","created_at":"2026-11-27T10:00:00Z"}}`
const validPostingJSON = `{"id":"p-1","title":"t","description":"d","budget":{"type":"fixed","min":1,"max":2,"currency":"USD"},"skills":["go"],"url":"http://x/p/p-1","posted_at":"2026-11-27T10:00:00Z","client":{"rating":4.5,"total_spend":10,"country":"DE"},"status":"open"}`

// brokenServer answers every request with handler.
func brokenServer(t *testing.T, handler http.HandlerFunc) *Adapter {
	t.Helper()
	hs := httptest.NewServer(handler)
	t.Cleanup(hs.Close)
	return newTestAdapter(t, hs.URL, secretToken, 2*time.Second)
}

func fixed(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func dropConnection(w http.ResponseWriter, r *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// truncated promises a longer body than it sends.
func truncated(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n%s", status, http.StatusText(status), body)
		_ = buf.Flush()
	}
}

func huge(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		chunk := []byte(`{"bid":{"id":"` + strings.Repeat("x", 64<<10))
		for written := 0; written <= MaxAnswerBytes; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
}

func TestMalformedBidAnswers(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		class   error
		reason  string
	}{
		{"bad json", fixed(201, `{"bid":`), marketplace.ErrAmbiguous, ReasonMalformed},
		{"empty 201", fixed(201, ``), marketplace.ErrAmbiguous, ReasonMalformed},
		{"empty 200", fixed(200, ``), marketplace.ErrAmbiguous, ReasonMalformed},
		{"html 200", fixed(200, `<html>ok</html>`), marketplace.ErrAmbiguous, ReasonMalformed},
		{"wrong types", fixed(201, `{"bid":{"id":5,"posting_id":"p-1"}}`), marketplace.ErrAmbiguous, ReasonInvalid},
		{"no bid", fixed(201, `{"ok":true}`), marketplace.ErrAmbiguous, ReasonInvalid},
		{"bid on another posting", fixed(201, strings.Replace(validBidJSON, `"p-1"`, `"p-2"`, 1)), marketplace.ErrAmbiguous, ReasonInvalid},
		{"bid without id", fixed(201, strings.Replace(validBidJSON, `"b-1"`, `""`, 1)), marketplace.ErrAmbiguous, ReasonInvalid},
		{"huge body", huge(201), marketplace.ErrAmbiguous, ReasonTooLarge},
		{"dropped connection", dropConnection, marketplace.ErrAmbiguous, ReasonNoAnswer},
		{"truncated body", truncated(201, `{"bid":{"id":"b-1"`), marketplace.ErrAmbiguous, ""},
		{"504", fixed(504, `{"error":"gateway_timeout"}`), marketplace.ErrAmbiguous, "gateway_timeout"},
		{"500 no body", fixed(500, ``), marketplace.ErrAmbiguous, "http_500"},
		{"502 html", fixed(502, `<html>bad gateway</html>`), marketplace.ErrAmbiguous, "http_502"},
		{"503 from a proxy", fixed(503, `Service Unavailable`), marketplace.ErrAmbiguous, "http_503"},
		{"503 from the contract", fixed(503, `{"error":"unavailable"}`), marketplace.ErrTransient, "unavailable"},
		{"302", fixed(302, ``, "Location", "/elsewhere"), marketplace.ErrAmbiguous, ReasonUnexpected},
		{"202", fixed(202, validBidJSON), marketplace.ErrAmbiguous, ReasonUnexpected},
		{"409 garbage", fixed(409, `nope`), marketplace.ErrAlreadyBid, codeAlreadyBid},
		{"409 wrong types", fixed(409, `{"error":"already_bid","bid":{"id":[1]}}`), marketplace.ErrAlreadyBid, codeAlreadyBid},
		{"410 no body", fixed(410, ``), marketplace.ErrPostingClosed, codeClosed},
		{"422 detail wrong type", fixed(422, `{"error":"invalid_bid","detail":7}`), marketplace.ErrPermanent, codeInvalidBid},
		{"429 bad retry-after", fixed(429, `{}`, "Retry-After", "soon"), marketplace.ErrRateLimited, codeRateLimited},
		{"418", fixed(418, `{"error":"teapot"}`), marketplace.ErrPermanent, ReasonUnexpected},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := brokenServer(t, c.handler)
			_, err := a.PlaceBid(context.Background(), "p-1", marketplace.Bid{Amount: 10, Currency: "USD", Proposal: "x", IdempotencyKey: "k"})
			wantClass(t, err, c.class, c.reason)
			if strings.Contains(err.Error(), secretToken) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}

	a := brokenServer(t, fixed(409, `{"error":"already_bid","bid":{"id":"b-9","posting_id":"p-2","created_at":"2026-11-27T10:00:00Z"}}`))
	_, err := a.PlaceBid(context.Background(), "p-1", marketplace.Bid{Amount: 1, Currency: "USD", Proposal: "x"})
	if _, ok := marketplace.ExistingBid(err); ok || !errors.Is(err, marketplace.ErrAlreadyBid) {
		t.Fatalf("409 naming another posting's bid: %v; want ErrAlreadyBid without Existing", err)
	}
}

func TestMalformedReadAnswers(t *testing.T) {
	page := func(postings string) string { return `{"postings":[` + postings + `],"next_cursor":"c1"}` }
	cases := []struct {
		name    string
		handler http.HandlerFunc
		class   error
		reason  string
	}{
		{"bad json", fixed(200, `{"postings":[`), marketplace.ErrTransient, ReasonMalformed},
		{"empty 200", fixed(200, ``), marketplace.ErrTransient, ReasonMalformed},
		{"null", fixed(200, `null`), marketplace.ErrPermanent, ReasonInvalid},
		{"wrong types", fixed(200, `{"postings":{"a":1},"next_cursor":"c"}`), marketplace.ErrPermanent, ReasonInvalid},
		{"no cursor", fixed(200, `{"postings":[]}`), marketplace.ErrPermanent, ReasonInvalid},
		{"empty cursor with postings", fixed(200, `{"postings":[`+validPostingJSON+`],"next_cursor":""}`), marketplace.ErrPermanent, ReasonInvalid},
		{"invalid id", fixed(200, page(strings.Replace(validPostingJSON, `"id":"p-1"`, `"id":""`, 1))), marketplace.ErrPermanent, ReasonInvalid},
		{"id with newline", fixed(200, page(strings.Replace(validPostingJSON, `"id":"p-1"`, `"id":"p\n1"`, 1))), marketplace.ErrPermanent, ReasonInvalid},
		{"bad status", fixed(200, page(strings.Replace(validPostingJSON, `"open"`, `"pending"`, 1))), marketplace.ErrPermanent, ReasonInvalid},
		{"bad budget", fixed(200, page(strings.Replace(validPostingJSON, `"max":2`, `"max":-2`, 1))), marketplace.ErrPermanent, ReasonInvalid},
		{"bad currency", fixed(200, page(strings.Replace(validPostingJSON, `"USD"`, `"usd"`, 1))), marketplace.ErrPermanent, ReasonInvalid},
		{"bad time", fixed(200, page(strings.Replace(validPostingJSON, `2026-11-27T10:00:00Z`, `yesterday`, 1))), marketplace.ErrPermanent, ReasonInvalid},
		{"repeated id", fixed(200, page(validPostingJSON+","+validPostingJSON)), marketplace.ErrPermanent, ReasonInvalid},
		{"huge body", huge(200), marketplace.ErrTransient, ReasonTooLarge},
		{"dropped connection", dropConnection, marketplace.ErrTransient, ReasonNoAnswer},
		{"500", fixed(500, ``), marketplace.ErrTransient, "http_500"},
		{"503 html", fixed(503, `<html/>`), marketplace.ErrTransient, "http_503"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := brokenServer(t, c.handler)
			page, err := a.Scan(context.Background(), "c0", 10)
			wantClass(t, err, c.class, c.reason)
			if len(page.Postings) != 0 {
				t.Fatalf("postings returned with an error: %+v", page.Postings)
			}
		})
	}

	// FindBid: the same rules.
	for name, c := range map[string]struct {
		h      http.HandlerFunc
		class  error
		reason string
	}{
		"bad json":       {fixed(200, `{"bids":[{`), marketplace.ErrTransient, ReasonMalformed},
		"no list":        {fixed(200, `{}`), marketplace.ErrPermanent, ReasonInvalid},
		"other posting":  {fixed(200, `{"bids":[{"id":"b-1","posting_id":"p-9","created_at":"2026-11-27T10:00:00Z"}]}`), marketplace.ErrPermanent, ReasonInvalid},
		"dropped":        {dropConnection, marketplace.ErrTransient, ReasonNoAnswer},
		"404":            {fixed(404, `{"error":"not_found"}`), marketplace.ErrPermanent, codeNotFound},
		"429 date-based": {fixed(429, ``, "Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)), marketplace.ErrRateLimited, codeRateLimited},
	} {
		t.Run("find_bid "+name, func(t *testing.T) {
			_, found, err := brokenServer(t, c.h).FindBid(context.Background(), "p-1")
			wantClass(t, err, c.class, c.reason)
			if found {
				t.Fatal("found with an error")
			}
		})
	}
}

// The transport must not resend a bid on a reused connection that drops: the
// server would see it twice.
func TestDroppedBidIsNeverResent(t *testing.T) {
	var posts atomic.Int64
	a := brokenServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
			dropConnection(w, r)
			return
		}
		fixed(200, `{"bids":[]}`)(w, r)
	})
	ctx := context.Background()
	// Warm a keep-alive connection so the POST goes out on a reused one,
	// the case in which net/http would retry.
	if _, _, err := a.FindBid(ctx, "p-1"); err != nil {
		t.Fatal(err)
	}
	_, err := a.PlaceBid(ctx, "p-1", marketplace.Bid{Amount: 1, Currency: "USD", Proposal: "x", IdempotencyKey: "k"})
	wantClass(t, err, marketplace.ErrAmbiguous, ReasonNoAnswer)
	if n := posts.Load(); n != 1 {
		t.Fatalf("server received the bid %d times, want 1", n)
	}
}
