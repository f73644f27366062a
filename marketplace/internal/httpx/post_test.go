package httpx

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bidder/bidder/marketplace"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestPostBidClearsGetBody(t *testing.T) {
	c := testClient()
	c.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.GetBody != nil {
			t.Error("POST sent with GetBody set: net/http could resend it")
		}
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Idempotency-Key") != "k1" || r.Header.Get("X-Token") != "secret" {
			t.Errorf("headers %v", r.Header)
		}
		return &http.Response{StatusCode: http.StatusCreated, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
	})}
	ans, err := c.PostBid(context.Background(), "place_bid", "http://marketplace.test/bids", []byte(`{}`), http.Header{"Idempotency-Key": {"k1"}})
	if err != nil || ans.Status != http.StatusCreated || string(ans.Body) != "{}" {
		t.Fatalf("answer %+v, %v", ans, err)
	}
}

// A keep-alive connection that dies after the bid was written must not make
// net/http send the bid again on a fresh one, even with an Idempotency-Key
// (which net/http takes as leave to resend): the caller gets ErrAmbiguous.
func TestPostBidIsNeverResentOnADeadConnection(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		if posts.Add(1) == 1 {
			w.WriteHeader(http.StatusCreated)
			return
		}
		// Later bids: read, then drop the connection without an answer.
		hangUp(t, w)
	}))
	defer srv.Close()
	c := testClient()
	key := http.Header{"Idempotency-Key": {"k1"}}
	if _, err := c.PostBid(context.Background(), "place_bid", srv.URL, []byte(`{"a":1}`), key); err != nil {
		t.Fatal(err)
	}
	_, err := c.PostBid(context.Background(), "place_bid", srv.URL, []byte(`{"a":1}`), key)
	wantError(t, err, marketplace.ErrAmbiguous, ReasonNoAnswer)
	if n := posts.Load(); n != 2 {
		t.Fatalf("server saw %d POSTs, want 2: the bid was resent", n)
	}
}

func TestPostBidNotSentIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens: the dial fails before anything is written
	_, err := testClient().PostBid(context.Background(), "place_bid", srv.URL, []byte(`{}`), nil)
	wantError(t, err, marketplace.ErrTransient, ReasonNotSent)
}

func TestPostBidOversizedAnswer(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusCreated)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(strings.Repeat("x", 17)))
	}))
	defer srv.Close()
	c := testClient()

	// Accepted, maybe: the bid may exist.
	_, err := c.PostBid(context.Background(), "place_bid", srv.URL, []byte(`{}`), nil)
	wantError(t, err, marketplace.ErrAmbiguous, ReasonTooLarge)

	// Refused: the status line says so, whatever the body.
	status.Store(http.StatusConflict)
	ans, err := c.PostBid(context.Background(), "place_bid", srv.URL, []byte(`{}`), nil)
	if err != nil || ans.Status != http.StatusConflict || ans.Body != nil {
		t.Fatalf("4xx with an oversized body: %+v, %v; want the status and no body", ans, err)
	}
}
