package httpx

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/bidder/bidder/marketplace"
)

// A retract is a PUT without a body: sent once, with the caller's content
// type, and a dropped connection after it left is ambiguous, not resent.
func TestSendOncePutIsNeverResent(t *testing.T) {
	var puts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPut || len(b) != 0 || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.URL.Query().Get("action") != "retract" {
			t.Errorf("request %s %q %v %s", r.Method, b, r.Header, r.URL)
		}
		if puts.Add(1) == 1 {
			_, _ = w.Write([]byte(`{"status":"success"}`))
			return
		}
		hangUp(t, w)
	}))
	defer srv.Close()
	c := testClient()
	c.MaxBytes = 1 << 10
	target := srv.URL + "/bids/1/?action=retract"
	ans, err := c.SendOnce(context.Background(), "retract_bid", http.MethodPut, target, "application/x-www-form-urlencoded", nil, nil)
	if err != nil || ans.Status != http.StatusOK || string(ans.Body) != `{"status":"success"}` {
		t.Fatalf("first PUT: %+v, %v", ans, err)
	}
	// The keep-alive connection is reused and dies after the request.
	_, err = c.SendOnce(context.Background(), "retract_bid", http.MethodPut, target, "application/x-www-form-urlencoded", nil, nil)
	wantError(t, err, marketplace.ErrAmbiguous, ReasonNoAnswer)
	if n := puts.Load(); n != 2 {
		t.Fatalf("server saw %d PUTs, want 2: the request was resent", n)
	}
}

// hangUp closes the connection without an answer.
func hangUp(t *testing.T, w http.ResponseWriter) {
	t.Helper()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	_ = conn.Close()
}

func TestSendOnceWithoutContentType(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct, ok := r.Header["Content-Type"]; ok {
			t.Errorf("Content-Type %q sent for a request without a body type", ct)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	ans, err := testClient().SendOnce(context.Background(), "op", http.MethodPost, srv.URL, "", nil, nil)
	if err != nil || ans.Status != http.StatusNoContent {
		t.Fatalf("answer %+v, %v", ans, err)
	}
}
