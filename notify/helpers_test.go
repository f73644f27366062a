package notify

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
)

// Secrets the tests look for in every error and log line.
const (
	hookSecret = "hook-SECRET-aa11"
	slackPath  = "/services/T0/B0/slack-SECRET-bb22"
	tgToken    = "123456:tg-SECRET-cc33"
)

var secrets = []string{hookSecret, "slack-SECRET", "tg-SECRET", "SECRET"}

const mp = "m"

// fakeWebhook verifies each request's signature and counts deliveries by
// Idempotency-Key; fail makes the next n requests answer 503.
type fakeWebhook struct {
	*httptest.Server
	mu     sync.Mutex
	keys   map[string]int // every request with a good signature
	ok     map[string]int // answered 2xx
	bodies []WebhookBody
	fail   int
	status int // answer for failures (default 503)
	badSig int
}

func newFakeWebhook(t *testing.T) *fakeWebhook {
	f := &fakeWebhook{keys: map[string]int{}, ok: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		if !hmac.Equal([]byte(r.Header.Get(HeaderSignature)), []byte(Sign([]byte(hookSecret), b))) || r.Header.Get(HeaderTimestamp) == "" {
			f.badSig++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		key := r.Header.Get(HeaderIdempotencyKey)
		f.keys[key]++
		if f.fail > 0 {
			f.fail--
			st := f.status
			if st == 0 {
				st = http.StatusServiceUnavailable
			}
			w.WriteHeader(st)
			return
		}
		var body WebhookBody
		if json.Unmarshal(b, &body) == nil && f.ok[key] == 0 { // the receiver dedups by key
			f.bodies = append(f.bodies, body)
		}
		f.ok[key]++
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeWebhook) snapshot() (keys, ok map[string]int, bodies []WebhookBody, bad int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, o := map[string]int{}, map[string]int{}
	for a, b := range f.keys {
		k[a] = b
	}
	for a, b := range f.ok {
		o[a] = b
	}
	return k, o, append([]WebhookBody(nil), f.bodies...), f.badSig
}

// fakeChat is Slack's incoming webhook or Telegram's sendMessage: the first
// limited requests are rate limited the API's way, then each is posted.
type fakeChat struct {
	*httptest.Server
	mu       sync.Mutex
	texts    []string
	limited  int
	requests int
	answer   func(w http.ResponseWriter) bool // optional: answers instead, true when it did
}

func newFakeSlack(t *testing.T, limited int) *fakeChat {
	f := &fakeChat{limited: limited}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests++
		if r.URL.Path != slackPath {
			http.Error(w, "no_service", http.StatusNotFound)
			return
		}
		if f.answer != nil && f.answer(w) {
			return
		}
		if f.limited > 0 {
			f.limited--
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate_limited", http.StatusTooManyRequests)
			return
		}
		var m struct{ Text string }
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || m.Text == "" {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		f.texts = append(f.texts, m.Text)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(f.Close)
	return f
}

func newFakeTelegram(t *testing.T, limited int) *fakeChat {
	f := &fakeChat{limited: limited}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests++
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/bot"+tgToken+"/sendMessage" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"ok":false,"error_code":401,"description":"Unauthorized"}`)
			return
		}
		if f.answer != nil && f.answer(w) {
			return
		}
		if f.limited > 0 {
			f.limited--
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}`)
			return
		}
		var m struct {
			ChatID string `json:"chat_id"`
			Text   string `json:"text"`
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || m.ChatID != "-100" || m.Text == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`)
			return
		}
		f.texts = append(f.texts, m.Text)
		_, _ = io.WriteString(w, `{"ok":true,"result":{"message_id":1}}`)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeChat) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.texts...)
}

// env is a Redis, a ledger writing the outbox, and the three fakes.
type env struct {
	rdb     redis.UniversalClient
	led     *ledger.Ledger
	locks   *lock.Manager
	hook    *fakeWebhook
	slack   *fakeChat
	tg      *fakeChat
	cfg     Config
	metrics *Metrics
	client  *asynq.Client
}

func newEnv(t *testing.T, slackLimited, tgLimited int) *env {
	t.Helper()
	s := redistest.Start(t)
	return newEnvOn(t, s.Client(t), false, slackLimited, tgLimited)
}

func newEnvOn(t *testing.T, rdb redis.UniversalClient, hashTags bool, slackLimited, tgLimited int) *env {
	t.Helper()
	e := &env{rdb: rdb,
		led:   ledger.New(rdb, ledger.WithNotifications(true), ledger.WithHashTags(hashTags)),
		locks: lock.NewManager(rdb, lock.WithTTL(time.Minute), lock.WithHashTags(hashTags)),
		hook:  newFakeWebhook(t), slack: newFakeSlack(t, slackLimited), tg: newFakeTelegram(t, tgLimited),
		metrics: NewMetrics(nil),
	}
	hc := NewHTTPClient(2 * time.Second)
	e.cfg = Config{
		Marketplaces: []string{mp},
		Routes: []Route{
			{Channel: NewWebhook("hook", e.hook.URL+"/in", hookSecret, hc)},
			{Channel: NewSlack("slack", e.slack.URL+slackPath, hc)},
			{Channel: NewTelegram("tg", e.tg.URL, tgToken, "-100", hc)},
		},
		SweepEvery: 50 * time.Millisecond,
		MaxRetry:   20,
	}
	e.client = asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { _ = e.client.Close() })
	return e
}

// testRetryDelay is the worker's policy made quick: a Delayer's delay
// (Retry-After), else 50ms.
func testRetryDelay(_ int, err error, _ *asynq.Task) time.Duration {
	var re *RetryError
	if errors.As(err, &re) && re.After > 0 {
		return re.After
	}
	return 50 * time.Millisecond
}

func testIsFailure(err error) bool {
	var re *RetryError
	if errors.As(err, &re) {
		return re.Counted
	}
	return true
}

// serve runs an asynq server on the notify queue with h.
func (e *env) serve(t *testing.T, h asynq.Handler) {
	t.Helper()
	srv := asynq.NewServerFromRedisClient(e.rdb, asynq.Config{
		Concurrency: 4, Queues: map[string]int{Queue: 1},
		RetryDelayFunc: testRetryDelay, IsFailure: testIsFailure,
		TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond,
		LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(TypeSend, h)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

// The ledger changes that write events, as the worker makes them.
func (e *env) placed(t *testing.T, id string) {
	t.Helper()
	l := e.claim(t, id, ledger.Decision{State: ledger.StateIntent})
	if err := e.led.Settle(context.Background(), l, mp, id, ledger.Outcome{State: ledger.StatePlaced, BidID: "b-" + id, Amount: 100, Currency: "USD", Release: true}); err != nil {
		t.Fatal(err)
	}
	l.MarkReleased()
}

func (e *env) review(t *testing.T, id string) {
	t.Helper()
	a, err := e.locks.Prepare(mp, id)
	if err != nil {
		t.Fatal(err)
	}
	d := ledger.Decision{State: ledger.StateReview, Amount: 900, Currency: "EUR", Proposal: "hi", Rule: "review",
		Reason: "amount above 500", ReviewUntil: time.Now().Add(time.Hour)}
	if c, err := e.led.Claim(context.Background(), a, mp, id, d); err != nil || c.Outcome != ledger.InReview {
		t.Fatalf("review claim %+v: %v", c, err)
	}
}

func (e *env) parked(t *testing.T, id string) {
	t.Helper()
	l := e.claim(t, id, ledger.Decision{State: ledger.StateIntent})
	if err := e.led.Park(context.Background(), l.Key(), l.FenceKey(), l.Holder(), mp, id, "attempts_exhausted", "find bid: 503"); err != nil {
		t.Fatal(err)
	}
	l.MarkReleased()
}

func (e *env) claim(t *testing.T, id string, d ledger.Decision) *lock.Lock {
	t.Helper()
	ctx := context.Background()
	a, err := e.locks.Prepare(mp, id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.led.Claim(ctx, a, mp, id, d)
	if err != nil || !c.Outcome.Holds() {
		t.Fatalf("claim %s: %+v %v", id, c, err)
	}
	return a.Held(ctx, c.Token)
}

// outboxLen is how many entries the marketplace's outboxes hold.
func (e *env) outboxLen(t *testing.T) int64 {
	t.Helper()
	var n int64
	keys := e.led.OutboxKeys(mp)
	pipe := e.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.LLen(context.Background(), k)
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		n += c.Val()
	}
	return n
}

// outboxEntries reads (without popping) every entry of the marketplace's
// first outbox (no hash tags: the only one).
func (e *env) outboxEntries(t *testing.T) []string {
	t.Helper()
	v, err := e.rdb.LRange(context.Background(), e.led.OutboxKeys(mp)[0], 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// noSecret fails when s holds a credential.
func noSecret(t *testing.T, where, s string) {
	t.Helper()
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s holds a secret (%q): %s", where, sec, s)
		}
	}
}
