package httpserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"github.com/bidder/bidder/internal/redistest"
)

// serve runs a real listener for o until the test ends and returns its
// base URL.
func serve(t *testing.T, o Options) string {
	t.Helper()
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "http://" + s.Addr()
}

type request struct {
	method, url, host string
	header            map[string]string
	user, pass        string
}

func do(t *testing.T, r request) (*http.Response, string) {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, r.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.host != "" {
		req.Host = r.host
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestCrossSitePostRefused: with the asynq web UI writable (read_only:
// false, as docs/operations.md suggests for maintenance), a page on another
// site made the operator's browser, basic-auth credentials cached, pause the
// bids queue. A real server in front of a real asynqmon and redis-server:
// the cross-site POST is refused and changes nothing; the same POST from
// the UI's own origin works.
func TestCrossSitePostRefused(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	if _, err := asynq.NewClientFromRedisClient(rdb).Enqueue(asynq.NewTask("bid:place", nil), asynq.Queue("bids")); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	paused := func() bool {
		qi, err := insp.GetQueueInfo("bids")
		if err != nil {
			t.Fatal(err)
		}
		return qi.Paused
	}
	mon := asynqmon.New(asynqmon.Options{RootPath: MonitoringRoot, RedisConnOpt: sharedClient{rdb}, ReadOnly: false})
	base := serve(t, Options{Addr: "127.0.0.1:0", Monitoring: mon, Username: "ops", Password: "pw"})
	pause := base + MonitoringRoot + "/api/queues/bids:pause"

	for _, c := range []struct {
		name   string
		header map[string]string
	}{
		{"modern browser", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}},
		{"same site, other origin", map[string]string{"Origin": "http://localhost:1", "Sec-Fetch-Site": "same-site"}},
		{"browser without Sec-Fetch-Site", map[string]string{"Origin": "https://evil.example"}},
	} {
		resp, body := do(t, request{method: http.MethodPost, url: pause, header: c.header, user: "ops", pass: "pw"})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: cross-origin POST answered %d %q; want 403", c.name, resp.StatusCode, body)
		}
		if paused() {
			t.Fatalf("%s: a cross-origin POST paused the bids queue", c.name)
		}
	}

	resp, body := do(t, request{method: http.MethodPost, url: pause, user: "ops", pass: "pw",
		header: map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"}})
	if resp.StatusCode != http.StatusNoContent || !paused() {
		t.Fatalf("same-origin POST with auth: %d %q, paused=%v; want 204 and paused", resp.StatusCode, body, paused())
	}
	// Without credentials the UI's own origin still gets nothing.
	resp, _ = do(t, request{method: http.MethodPost, url: base + MonitoringRoot + "/api/queues/bids:resume",
		header: map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"}})
	if resp.StatusCode != http.StatusUnauthorized || !paused() {
		t.Fatalf("same-origin POST without auth: %d; want 401 and still paused", resp.StatusCode)
	}
}

type sharedClient struct{ c any }

func (s sharedClient) MakeRedisClient() any { return s.c }

// TestNoFramingAnywhere: every answer, pages, API, errors and refusals
// alike, forbids being framed (clickjacking a writable UI).
func TestNoFramingAnywhere(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ui")) })
	base := serve(t, Options{Addr: "127.0.0.1:0", Monitoring: ui})
	for _, r := range []request{
		{url: base + "/"}, {url: base + "/metrics"}, {url: base + "/healthz"}, {url: base + "/readyz"},
		{url: base + MonitoringRoot + "/"}, {url: base + "/nope"},
		{url: base + "/", host: "rebind.example"},
		{method: http.MethodPost, url: base + MonitoringRoot + "/x", header: map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		resp, _ := do(t, r)
		if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("%s %s (Host %q): X-Frame-Options %q, want DENY", r.method, r.url, r.host, got)
		}
		// The pages this package draws add a stricter policy, never without
		// frame-ancestors.
		if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("%s %s (Host %q): Content-Security-Policy %q, want frame-ancestors 'none'", r.method, r.url, r.host, got)
		}
	}
}

// TestLoopbackListenerAnswersLoopbackHostsOnly: DNS rebinding points a name
// the attacker owns at 127.0.0.1, and the browser then lets the attacker's
// page read the status page (Redis address, ACL user, config path) and a UI
// that runs without auth on loopback. The name is still in the Host header.
func TestLoopbackListenerAnswersLoopbackHostsOnly(t *testing.T) {
	base := serve(t, Options{Addr: "127.0.0.1:0", Info: map[string]string{"redis": "redis://:xxxxx@10.0.0.7:6379/0"}})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	for _, c := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, 200}, {"localhost:" + port, 200}, {"LOCALHOST", 200}, {"[::1]:" + port, 200},
		{"127.0.0.1", 200}, {"[::1]", 200}, {"localhost.", 200},
		{"rebind.example:" + port, 421}, {"rebind.example", 421}, {"10.0.0.7:" + port, 421},
		{"localhost.rebind.example", 421}, {"127.0.0.1.nip.io:" + port, 421},
	} {
		resp, body := do(t, request{url: base + "/", host: c.host})
		if resp.StatusCode != c.want {
			t.Errorf("Host %q: %d, want %d", c.host, resp.StatusCode, c.want)
		}
		if c.want != 200 && (strings.Contains(body, "10.0.0.7:6379") || !strings.Contains(body, "http.allowed_hosts")) {
			t.Errorf("Host %q refused with %.200q; want a short reason naming http.allowed_hosts and nothing of the page", c.host, body)
		}
	}
}

// TestAllowedHosts: behind a name (a reverse proxy, a Prometheus that
// scrapes by name) the allow-list is what a listener answers; without one a
// non-loopback listener answers any Host, as before.
func TestAllowedHosts(t *testing.T) {
	open := serve(t, Options{Addr: "0.0.0.0:0"})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(open, "http://"))
	local := "http://127.0.0.1:" + port
	if resp, _ := do(t, request{url: local + "/healthz", host: "bidder.internal:" + port}); resp.StatusCode != 200 {
		t.Errorf("non-loopback listener without allowed_hosts refused a name: %d", resp.StatusCode)
	}

	listed := serve(t, Options{Addr: "0.0.0.0:0", AllowedHosts: []string{"bidder.internal", "Status.Example.COM"}})
	_, port, _ = net.SplitHostPort(strings.TrimPrefix(listed, "http://"))
	local = "http://127.0.0.1:" + port
	for _, c := range []struct {
		host string
		want int
	}{
		{"bidder.internal:" + port, 200}, {"status.example.com", 200}, {"10.1.2.3:" + port, 200}, {"[fd00::1]:" + port, 200},
		{"localhost:" + port, 200}, {"evil.example:" + port, 421}, {"bidder.internal.evil.example", 421},
	} {
		if resp, _ := do(t, request{url: local + "/healthz", host: c.host}); resp.StatusCode != c.want {
			t.Errorf("allowed_hosts listener, Host %q: %d, want %d", c.host, resp.StatusCode, c.want)
		}
	}

	proxied := serve(t, Options{Addr: "127.0.0.1:0", AllowedHosts: []string{"bidder.example.com"}})
	for _, c := range []struct {
		host string
		want int
	}{{"bidder.example.com", 200}, {"localhost", 200}, {"evil.example", 421}, {"10.1.2.3", 421}} {
		if resp, _ := do(t, request{url: proxied + "/healthz", host: c.host}); resp.StatusCode != c.want {
			t.Errorf("loopback listener with allowed_hosts, Host %q: %d, want %d", c.host, resp.StatusCode, c.want)
		}
	}
}
