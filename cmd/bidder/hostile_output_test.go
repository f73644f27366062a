package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
)

// escapes would clear the operator's screen, retitle the terminal, print a
// forged line and flip the text direction.
const escapes = "\x1b[2J\x1b[H\x1b]0;owned\x07config OK\r\n\u202eevil\u009b31m"

// TestOperatorOutputCannotDriveTheTerminal: ledger records and lock values
// are read from Redis and error texts come from marketplaces; `ledger get`,
// `ledger list`, `locks list` and `scan-once` print them. Through the binary against a
// real redis-server, nothing a terminal acts on may reach its output.
func TestOperatorOutputCannotDriveTheTerminal(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		detail, _ := json.Marshal(escapes)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"bad_request","detail":%s}`, detail)
	}))
	defer hostile.Close()
	dir := t.TempDir()
	cfgPath := opsConfig(t, dir, hostile.URL)
	env := []string{"REDIS_URL=redis://" + rs.Addr() + "/0", "MP_TOKEN=tok"}
	run := func(args ...string) string {
		t.Helper()
		p := start(t, dir, env, append(args, "--config", cfgPath)...)
		p.wait(30 * time.Second)
		return p.stdout.String() + p.stderr.String()
	}

	locks, led := lock.NewManager(rdb), ledger.New(rdb)
	a, err := locks.Prepare("ops", "p-1")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := led.Claim(ctx, a, "ops", "p-1", ledger.Decision{State: ledger.StateSkipped, Rule: "rule" + escapes, Reason: "HTTP 422: " + escapes}); err != nil || c.Outcome != ledger.Recorded {
		t.Fatal(c, err)
	}
	if _, err := led.Discover(ctx, "ops", []ledger.Found{{PostingID: "p-3", Payload: []byte(`{"v":1}`)}}); err != nil {
		t.Fatal(err)
	}
	keys := lock.Keys{Prefix: lock.DefaultKeyPrefix}
	if err := led.Park(ctx, keys.Lock("ops", "p-3"), keys.Fence("ops", "p-3"), "", "ops", "p-3", "attempts"+escapes, "find bid: "+escapes); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "bid_lock:ops:p-2", "holder"+escapes, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		args []string
		want string // the hostile field, shown escaped
	}{
		{[]string{"ledger", "get", "--marketplace", "ops", "--posting", "p-1"}, `reason:   "HTTP 422: \x1b[2J`},
		{[]string{"ledger", "get", "--marketplace", "ops", "--posting", "p-3"}, `park:     "attempts\x1b[2J`},
		{[]string{"ledger", "list", "--marketplace", "ops", "--state", "parked"}, `"find bid: \x1b[2J`},
		{[]string{"locks", "list"}, `"holder\x1b[2J`},
		{[]string{"scan-once", "--marketplace", "ops"}, "HTTP 400: "},
	} {
		out := run(c.args...)
		if !textsafe.Clean(strings.NewReplacer("\n", "", "\t", "").Replace(out)) {
			t.Errorf("bidder %s printed what a terminal acts on:\n%q", strings.Join(c.args, " "), out)
		}
		if !strings.Contains(out, c.want) {
			t.Errorf("bidder %s: %q not in the output:\n%s", strings.Join(c.args, " "), c.want, out)
		}
	}
}
