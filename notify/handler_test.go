package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/ledger"
)

var errCrash = errors.New("crashed after the send")

// task is the send task the sweeper would enqueue for the outbox's first
// entry and channel.
func (e *env) task(t *testing.T, channel string) *asynq.Task {
	t.Helper()
	entries := e.outboxEntries(t)
	if len(entries) == 0 {
		t.Fatal("empty outbox")
	}
	ev, err := ledger.ParseEvent([]byte(entries[0]))
	if err != nil {
		t.Fatal(err)
	}
	task, err := NewTask(channel, []byte(entries[0]), ev, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// TestCrashBetweenSendAndMark: a run that sent and died before marking it
// sent is run again. The webhook gets the same Idempotency-Key twice (its
// receiver keeps one); Slack and Telegram are not sent again, and the
// window is counted in ambiguous_total. A third run finds the mark.
func TestCrashBetweenSendAndMark(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.placed(t, "p-1")
	ctx := context.Background()
	crashing := NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics),
		WithAfterSendHook(func(string, string) error { return errCrash }))
	h := NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics))
	for _, ch := range []string{"hook", "slack", "tg"} {
		task := e.task(t, ch)
		if err := crashing.ProcessTask(ctx, task); !errors.Is(err, errCrash) {
			t.Fatalf("%s: first run: %v", ch, err)
		}
		if err := h.ProcessTask(ctx, task); err != nil {
			t.Fatalf("%s: second run: %v", ch, err)
		}
		if err := h.ProcessTask(ctx, task); err != nil {
			t.Fatalf("%s: third run: %v", ch, err)
		}
	}
	keys, ok, _, _ := e.hook.snapshot()
	if keys["bid_placed:m:p-1"] != 2 || ok["bid_placed:m:p-1"] != 2 {
		t.Fatalf("webhook keys %v: want the same key twice", keys)
	}
	if got := e.slack.got(); len(got) != 1 {
		t.Fatalf("slack got %q, want one message", got)
	}
	if got := e.tg.got(); len(got) != 1 {
		t.Fatalf("telegram got %q, want one message", got)
	}
	for ch, want := range map[string]float64{"hook": 0, "slack": 1, "tg": 1} {
		if n := testutil.ToFloat64(e.metrics.ambiguous.WithLabelValues(ch)); n != want {
			t.Errorf("%s: ambiguous_total = %v, want %v", ch, n, want)
		}
		if n := testutil.ToFloat64(e.metrics.duplicate.WithLabelValues(ch)); n != 1 {
			t.Errorf("%s: skipped_duplicate_total = %v, want 1 (the third run)", ch, n)
		}
	}
}

// TestChannelDownThenBack: a webhook answering 503 for a while gets the
// event once it is back, through asynq's retries.
func TestChannelDownThenBack(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.hook.fail = 3
	e.cfg.Routes = e.cfg.Routes[:1]
	e.placed(t, "p-1")
	e.serve(t, NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics)))
	if err := NewSweeper(e.rdb, e.client, e.led, e.cfg, e.metrics, nil).Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 20*time.Second, "delivered after the outage", func() bool {
		_, ok, _, _ := e.hook.snapshot()
		return ok["bid_placed:m:p-1"] > 0
	})

	keys, ok, _, _ := e.hook.snapshot()
	if keys["bid_placed:m:p-1"] != 4 || ok["bid_placed:m:p-1"] != 1 {
		t.Fatalf("requests %v, delivered %v: want 3 refused then 1", keys, ok)
	}
	if n := testutil.ToFloat64(e.metrics.failed.WithLabelValues("hook", ReasonRetryable)); n != 3 {
		t.Fatalf("failed{retryable} = %v, want 3", n)
	}
	wait.Until(t, 5*time.Second, "sent counted", func() bool {
		return testutil.ToFloat64(e.metrics.sent.WithLabelValues("hook", "bid_placed")) == 1
	})

}

// TestPermanentFailures: 400 and 401 are refusals: the task is archived
// without retry (SkipRetry), counted, and its marker cleared so a re-run
// from the monitoring UI starts clean.
func TestPermanentFailures(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.placed(t, "p-1")
	ctx := context.Background()
	e.hook.fail, e.hook.status = 1, http.StatusUnauthorized
	e.cfg.Routes[1].Channel = NewSlack("slack", e.slack.URL+slackPath, nil)
	e.slack.answer = func(w http.ResponseWriter) bool {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return true
	}
	e.cfg.Routes[2].Channel = NewTelegram("tg", e.tg.URL, "999:wrong-SECRET-dd44", "-100", nil)
	h := NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics))
	for _, ch := range []string{"hook", "slack", "tg"} {
		err := h.ProcessTask(ctx, e.task(t, ch))
		if !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, ErrPermanent) {
			t.Fatalf("%s: %v, want a permanent SkipRetry", ch, err)
		}
		noSecret(t, ch+" error", err.Error())
		if n := testutil.ToFloat64(e.metrics.failed.WithLabelValues(ch, ReasonPermanent)); n != 1 {
			t.Errorf("%s: failed{permanent} = %v", ch, n)
		}
		if k := e.cfg.DeliveryKey(ch, "bid_placed:m:p-1"); e.rdb.Exists(ctx, k).Val() != 0 {
			t.Errorf("%s: marker left after a refusal", ch)
		}
		t.Log(err)
	}
	if err := h.ProcessTask(ctx, e.task(t, "slack")); !strings.Contains(fmt.Sprint(err), "invalid_payload") {
		t.Fatalf("slack's error code is not named: %v", err)
	}
}

// TestHostileAnswers: huge bodies, garbage JSON, a server that never
// answers, nothing listening: no panic, a bounded read, and each classified.
func TestHostileAnswers(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.placed(t, "p-1")
	ctx := context.Background()
	huge := func(status int) func(w http.ResponseWriter) bool {
		return func(w http.ResponseWriter) bool {
			w.WriteHeader(status)
			chunk := strings.Repeat("x", 1<<20)
			for range 64 { // 64 MiB unless the client stops reading
				if _, err := io.WriteString(w, chunk); err != nil {
					break
				}
			}
			return true
		}
	}
	msg := Message{Event: ledger.Event{ID: "bid_placed:m:p-1", Kind: ledger.EventBidPlaced, Marketplace: mp, PostingID: "p-1"}, Text: "t"}
	slack := NewSlack("slack", e.slack.URL+slackPath, NewHTTPClient(2*time.Second))
	tg := NewTelegram("tg", e.tg.URL, tgToken, "-100", NewHTTPClient(2*time.Second))

	e.slack.answer = huge(http.StatusInternalServerError)
	if err := slack.Send(ctx, msg); !errors.Is(err, ErrRetryable) {
		t.Fatalf("huge 500: %v", err)
	}
	e.slack.answer = huge(http.StatusOK)
	if err := slack.Send(ctx, msg); err != nil {
		t.Fatalf("huge 200: %v (a success status is a success)", err)
	}
	e.tg.answer = func(w http.ResponseWriter) bool { _, _ = io.WriteString(w, "{not json"); return true }
	if err := tg.Send(ctx, msg); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("garbage 200 from telegram: %v, want ambiguous", err)
	}
	e.tg.answer = func(w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, `{"ok":false,"error_code":"x","parameters":{"retry_after":-5}}`)
		return true
	}
	if err := tg.Send(ctx, msg); !errors.Is(err, ErrRetryable) {
		t.Fatalf("garbage 502 from telegram: %v", err)
	}
	e.tg.answer = func(w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"ok":false,"error_code":429,"parameters":{"retry_after":99999999999}}`)
		return true
	}
	var se *SendError
	if err := tg.Send(ctx, msg); !errors.As(err, &se) || se.RetryAfter != maxRetryAfter {
		t.Fatalf("absurd retry_after: %v", err)
	}

	// Accepts the request, never answers: after the write, ambiguous.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	hung := NewSlack("slack", "http://"+ln.Addr().String()+slackPath, NewHTTPClient(200*time.Millisecond))
	err = hung.Send(ctx, msg)
	if !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("no answer after the write: %v, want ambiguous", err)
	}
	noSecret(t, "timeout error", err.Error())

	// Nothing listening: not sent, retryable.
	addr := ln.Addr().String()
	ln.Close()
	refused := NewTelegram("tg", "http://"+addr, tgToken, "-100", NewHTTPClient(time.Second))
	err = refused.Send(ctx, msg)
	if !errors.Is(err, ErrRetryable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("refused: %v", err)
	}
	noSecret(t, "refused error", err.Error())
}

// TestNoSecretInErrorsOrLogs: every failure path's error text and log
// line, with the webhook secret, the Slack URL and the Telegram token in
// play, holds none of them.
func TestNoSecretInErrorsOrLogs(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.placed(t, "p-1")
	ctx := context.Background()
	core, logs := observer.New(zap.DebugLevel)
	e.hook.fail = 100
	e.slack.answer = func(w http.ResponseWriter) bool {
		http.Error(w, "echo "+slackPath, http.StatusForbidden) // a hostile echo is not quoted
		return true
	}
	e.tg.answer = func(w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = io.WriteString(w, `{"ok":false,"error_code":504,"description":"`+tgToken+`"}`)
		return true
	}
	h := NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics), WithLogger(zap.New(core)))
	var errs []string
	for _, ch := range []string{"hook", "slack", "tg"} {
		if err := h.ProcessTask(ctx, e.task(t, ch)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// Unreachable hosts and a timeout.
	down := Config{Routes: []Route{
		{Channel: NewSlack("slack", "http://127.0.0.1:1"+slackPath, nil)},
		{Channel: NewTelegram("tg", "http://127.0.0.1:1", tgToken, "-100", nil)},
		{Channel: NewWebhook("hook", "http://127.0.0.1:1/x", hookSecret, nil)},
	}}
	hd := NewHandler(e.rdb, down, WithLogger(zap.New(core)))
	for _, ch := range []string{"hook", "slack", "tg"} {
		if err := hd.ProcessTask(ctx, e.task(t, ch)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) != 6 {
		t.Fatalf("want 6 errors, got %q", errs)
	}
	for _, s := range errs {
		noSecret(t, "error", s)
	}
	for _, entry := range logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		noSecret(t, "log line", line)
	}
	if logs.Len() == 0 {
		t.Fatal("nothing logged: the log check checked nothing")
	}
}

// TestRateLimitSharedAndUncounted: a channel at 1/s sends one; the next
// send in the same second waits (a retry that does not count), whichever
// handler (instance) runs it.
func TestRateLimitSharedAndUncounted(t *testing.T) {
	e := newEnv(t, 0, 0)
	e.placed(t, "p-1")
	e.parked(t, "p-2")
	ctx := context.Background()
	e.cfg.Routes[1].RatePerSecond = 1
	a := NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics))
	b := NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics))
	entries := e.outboxEntries(t)
	task := func(i int) *asynq.Task {
		ev, _ := ledger.ParseEvent([]byte(entries[i]))
		tk, _ := NewTask("slack", []byte(entries[i]), ev, e.cfg)
		return tk
	}
	if err := a.ProcessTask(ctx, task(0)); err != nil {
		t.Fatal(err)
	}
	err := b.ProcessTask(ctx, task(1))
	var re *RetryError
	if !errors.As(err, &re) || re.Counted || re.After <= 0 || re.After > time.Second {
		t.Fatalf("second send in the window: %v, want an uncounted wait under 1s", err)
	}
	if n := testutil.ToFloat64(e.metrics.rateLimited.WithLabelValues("slack")); n != 1 {
		t.Fatalf("rate_limited_total = %v", n)
	}
	if k := e.cfg.DeliveryKey("slack", "posting_parked:m:p-2"); e.rdb.Exists(ctx, k).Val() != 0 {
		t.Fatal("a rate-limited send left a marker (its retry would count it ambiguous)")
	}
}

// TestBadTasks: a payload or event that cannot be read is archived; a
// channel this process does not know waits for one that does (counted).
func TestBadTasks(t *testing.T) {
	e := newEnv(t, 0, 0)
	h := NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics))
	ctx := context.Background()
	for _, p := range []string{"", "[]", `{"channel":"hook","event":{"id":"x"}}`} {
		if err := h.ProcessTask(ctx, asynq.NewTask(TypeSend, []byte(p))); !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("payload %q: %v", p, err)
		}
	}
	err := h.ProcessTask(ctx, asynq.NewTask(TypeSend, []byte(`{"channel":"gone","event":{"id":"a:m:p","event":"a","marketplace":"m","posting":"p"}}`)))
	var re *RetryError
	if !errors.As(err, &re) || !re.Counted {
		t.Fatalf("unknown channel: %v", err)
	}
}
