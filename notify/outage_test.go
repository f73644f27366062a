package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
)

// TestRedisUnreachableSentOncePerOutage (issue 16, item 3): Redis down
// past the bound is the one event the outbox cannot carry (it lives in
// Redis), so the process sends it from memory, straight to each channel
// that wants it: once per outage, not before the bound, again for the
// next outage, and a channel down at first gets it when it is back.
func TestRedisUnreachableSentOncePerOutage(t *testing.T) {
	s := redistest.Start(t)
	rdb := s.Client(t)
	hook := newFakeWebhook(t)
	slack := newFakeSlack(t, 0)
	hc := NewHTTPClient(2 * time.Second)
	cfg := Config{Routes: []Route{
		{Channel: NewWebhook("hook", hook.URL+"/in", hookSecret, hc)},
		{Channel: NewSlack("slack", slack.URL+slackPath, hc)},
		{Channel: NewSlack("parked-only", slack.URL+slackPath, hc), Events: []string{"posting_parked"}},
	}}
	m := NewMetrics(nil)
	w := NewOutageWatch(rdb, cfg, 300*time.Millisecond, "host-1:42", m, zaptest.NewLogger(t))
	w.every = 20 * time.Millisecond
	w.Start()
	t.Cleanup(w.Shutdown)

	hook.mu.Lock()
	hook.fail = 2 // the webhook is down at first: retried until it takes it
	hook.mu.Unlock()
	delivered := func() int {
		_, ok, _, _ := hook.snapshot()
		n := 0
		for k, c := range ok {
			if strings.HasPrefix(k, EventRedisUnreachable+":host-1:42:") {
				n += c
			}
		}
		return n
	}
	texts := func() []string {
		slack.mu.Lock()
		defer slack.mu.Unlock()
		return append([]string(nil), slack.texts...)
	}

	checksPass := func(n int64) {
		t.Helper()
		from := w.checks.Load()
		wait.Until(t, 5*time.Second, "checks run", func() bool { return w.checks.Load() >= from+n })
	}
	// Up: nothing.
	checksPass(5)
	if delivered() != 0 || len(texts()) != 0 {
		t.Fatal("sent with Redis up")
	}
	s.Kill()
	wait.Until(t, 10*time.Second, "the outage reported to both channels", func() bool { return delivered() == 1 && len(texts()) == 1 })
	if got := texts()[0]; !strings.Contains(got, "Redis") || !strings.Contains(got, "host-1:42") {
		t.Fatalf("slack text %q", got)
	}
	// Still down: no second message.
	checksPass(5)
	if delivered() != 1 || len(texts()) != 1 {
		t.Fatalf("second message in one outage: webhook %d, slack %d", delivered(), len(texts()))
	}
	if n := testutil.ToFloat64(m.sent.WithLabelValues("slack", EventRedisUnreachable)); n != 1 {
		t.Fatalf("sent{slack} = %v", n)
	}

	// Back, and down again: a new outage, a new message.
	s.Restart()
	wait.Until(t, 10*time.Second, "the watch sees Redis back", func() bool { return !w.Down() })
	s.Kill()
	wait.Until(t, 10*time.Second, "the second outage reported", func() bool { return delivered() == 2 && len(texts()) == 2 })
	if keys, _, _, _ := hook.snapshot(); len(keys) != 2 {
		t.Fatalf("webhook keys %v: want one per outage", keys)
	}
}
