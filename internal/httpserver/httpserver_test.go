package httpserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	bids := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bidder_bids_total"}, []string{"marketplace", "outcome"})
	reg.MustRegister(bids)
	bids.WithLabelValues("mp1", "placed").Add(7)
	ready := errors.New("redis unreachable")
	s, err := Listen(Options{
		Addr:     "127.0.0.1:0",
		Gatherer: reg,
		Ready: func(context.Context) error {
			return ready
		},
		Monitoring: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ui")) }),
		Username:   "ops", Password: "pw",
		Info: map[string]string{"role": "run"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.ln.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	get := func(path, user, pass string) (int, string) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		path, user, pass string
		code             int
		body             string
	}{
		{"/healthz", "", "", 200, "ok"},
		{"/readyz", "", "", 503, "not ready: redis unreachable"},
		{"/metrics", "", "", 200, `bidder_bids_total{marketplace="mp1",outcome="placed"} 7`},
		{"/monitoring/", "", "", 401, "unauthorized"},
		{"/monitoring/", "ops", "nope", 401, "unauthorized"},
		{"/monitoring/", "ops", "pw", 200, "ui"},
		{"/", "", "", 200, `<p id="ready" class="bad">this instance: not ready: redis unreachable</p>`},
		{"/nope", "", "", 404, ""},
	} {
		code, body := get(c.path, c.user, c.pass)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("GET %s as %q: %d %q; want %d and %q", c.path, c.user, code, body, c.code, c.body)
		}
	}
	ready = nil
	if code, _ := get("/readyz", "", ""); code != 200 {
		t.Errorf("readyz %d once ready", code)
	}
}
