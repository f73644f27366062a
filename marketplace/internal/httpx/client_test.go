package httpx

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
)

func testClient() *Client {
	return &Client{
		HTTP:       NewHTTPClient(5 * time.Second),
		Timeout:    5 * time.Second,
		MaxBytes:   16,
		AuthHeader: "X-Token",
		AuthValue:  "secret",
		UserAgent:  "httpx-test",
	}
}

// wantError fails unless err is a *marketplace.Error of class and reason.
func wantError(t *testing.T, err error, class error, reason string) {
	t.Helper()
	var me *marketplace.Error
	if !errors.As(err, &me) || !errors.Is(err, class) || me.Reason != reason {
		t.Fatalf("error %v; want class %v, reason %q", err, class, reason)
	}
}

func TestGetSendsHeadersAndReturnsTheAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.Header.Get("X-Token") != "secret" ||
			r.Header.Get("User-Agent") != "httpx-test" || r.Header.Get("Accept") != "application/json" {
			t.Errorf("request %s %v", r.Method, r.Header)
		}
		w.Header().Set("X-Answer", "yes")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	ans, err := testClient().Get(context.Background(), "op", srv.URL)
	if err != nil || ans.Status != http.StatusTeapot || ans.Header.Get("X-Answer") != "yes" || string(ans.Body) != `{"ok":true}` {
		t.Fatalf("answer %+v, %v", ans, err)
	}
}

func TestGetFailuresAreTransient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 17)))
	}))
	_, err := testClient().Get(context.Background(), "op", srv.URL)
	wantError(t, err, marketplace.ErrTransient, ReasonTooLarge)

	srv.Close()
	_, err = testClient().Get(context.Background(), "op", srv.URL)
	wantError(t, err, marketplace.ErrTransient, ReasonNoAnswer)

	_, err = testClient().Get(context.Background(), "op", "http://bad host/")
	wantError(t, err, marketplace.ErrPermanent, ReasonInvalidInput)
}
