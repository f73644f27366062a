package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/notify"
)

const hookSecret = "hook-secret-9a7b"

func notifyConfig(t *testing.T, rs *redistest.Server, enabled bool, hookURL string) config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bidder.yaml")
	doc := `
http: {addr: 127.0.0.1:0}
notify:
  enabled: ` + map[bool]string{true: "true", false: "false"}[enabled] + `
  sweep_every: 100ms
  channels:
    - {name: hooks, type: webhook, url: "` + hookURL + `", secret_env: HOOK_SECRET}
marketplaces:
  - id: sbx
    adapter: sandbox
    base_url: http://127.0.0.1:9
    token_env: TOK
    rules:
      amount: {fixed: {strategy: fixed, amount: 100}}
      proposal: {template: "hi"}
`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDIS_URL": rs.URL(), "TOK": mpToken, "HOOK_SECRET": hookSecret}
	reg, _ := Adapters()
	cfg, err := config.Load(config.Options{Path: path, Adapters: reg.Names(),
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestNotifyWiring: with notify.enabled a worker's ledger writes the
// outbox, its asynq server serves the notify queue, and a parked posting
// reaches the webhook, signed.
func TestNotifyWiring(t *testing.T) {
	rs := redistest.Start(t)
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get(notify.HeaderSignature) != notify.Sign([]byte(hookSecret), b) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got = append(got, r.Header.Get(notify.HeaderIdempotencyKey))
		mu.Unlock()
	}))
	defer hook.Close()
	cfg := notifyConfig(t, rs, true, hook.URL+"/in")
	core, logs := observer.New(zap.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, zap.New(core), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.queues()[notify.Queue] != 1 {
		t.Fatalf("queues %v: no notify queue", a.queues())
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, Roles{Name: "worker", Worker: true}) }()
	keys := a.Locks.Keys()
	if err := a.Ledger.Park(ctx, keys.Lock("sbx", "p-1"), keys.Fence("sbx", "p-1"), "", "sbx", "p-1", "marketplace_transient", "HTTP 503"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the parked posting never reached the webhook")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "posting_parked:sbx:p-1" {
		t.Fatalf("webhook got %q", got)
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message+fmt.Sprint(e.ContextMap()), hookSecret) {
			t.Fatalf("secret logged: %v", e)
		}
	}
}

// TestNotifyDisabledChangesNothing: off, no outbox is written and no
// notify queue is served.
func TestNotifyDisabledChangesNothing(t *testing.T) {
	rs := redistest.Start(t)
	cfg := notifyConfig(t, rs, false, "https://example.com/in")
	ctx := context.Background()
	a, err := New(ctx, cfg, zap.NewNop(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, ok := a.queues()[notify.Queue]; ok {
		t.Fatalf("queues %v: a notify queue while disabled", a.queues())
	}
	keys := a.Locks.Keys()
	if err := a.Ledger.Park(ctx, keys.Lock("sbx", "p-1"), keys.Fence("sbx", "p-1"), "", "sbx", "p-1", "r", "why"); err != nil {
		t.Fatal(err)
	}
	if n := a.Conn.Client.Exists(ctx, a.Ledger.OutboxKey("sbx", "p-1")).Val(); n != 0 {
		t.Fatal("an outbox was written with notifications off")
	}
}
