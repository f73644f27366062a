package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
)

// opsConfig writes a config with one sandbox marketplace "ops" at baseURL
// (token from MP_TOKEN) and returns its path.
func opsConfig(t *testing.T, dir, baseURL string) string {
	t.Helper()
	return writeFile(t, dir, "bidder.yaml", fmt.Sprintf(`
marketplaces:
  - id: ops
    adapter: sandbox
    base_url: %s
    token_env: MP_TOKEN
    rules:
      amount:
        fixed: {strategy: fixed, amount: 100}
        hourly: {strategy: fixed, amount: 30}
      proposal: {template: "I can do {{.Title}}."}
`, baseURL))
}

// TestBinaryOperatorCommands: scan-once, ledger get, locks list and locks
// release as an operator runs them against a real Redis.
func TestBinaryOperatorCommands(t *testing.T) {
	const token = "ops-token-5e1"
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx := context.Background()

	scfg := sandbox.DefaultServerConfig()
	scfg.Tokens, scfg.Postings = []string{token}, 25
	ms, err := sandbox.NewServer(scfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ms)
	t.Cleanup(func() { hs.Close(); _ = ms.Close() })
	dir := t.TempDir()
	cfgPath := opsConfig(t, dir, hs.URL)
	env := []string{"REDIS_URL=redis://" + rs.Addr() + "/0", "MP_TOKEN=" + token}
	run := func(args ...string) (int, string) {
		t.Helper()
		p := start(t, dir, env, append(args, "--config", cfgPath)...)
		code := p.wait(30 * time.Second)
		return code, p.stdout.String() + p.stderr.String()
	}

	// scan-once enqueues one bid task per posting and prints a summary.
	if code, out := run("scan-once", "--marketplace", "ops"); code != 0 || !strings.Contains(out, "enqueued=25") {
		t.Fatalf("scan-once: exit %d\n%s", code, out)
	}
	if n, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(worker.MarketplaceQueue("ops")); err != nil || n.Pending != 25 {
		t.Fatalf("bid queue after scan-once: %+v, %v; want 25 pending", n, err)
	}
	if code, out := run("scan-once", "--marketplace", "nope"); code == 0 {
		t.Fatalf("scan-once of an unknown marketplace exited 0:\n%s", out)
	}

	// ledger get shows a decision, as a worker's claim writes it.
	locks := lock.NewManager(rdb)
	a, err := locks.Prepare("ops", "p-000001")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ledger.New(rdb).Claim(ctx, a, "ops", "p-000001", ledger.Decision{State: ledger.StateSkipped, Rule: "budget_range", Reason: "budget 10..20 below 100"}); err != nil || c.Outcome != ledger.Recorded {
		t.Fatal(c, err)
	}
	l, err := locks.TryAcquire(ctx, "ops", "p-000001")
	if err != nil {
		t.Fatal(err)
	}
	if code, out := run("ledger", "get", "--marketplace", "ops", "--posting", "p-000001"); code != 0 ||
		!strings.Contains(out, "skipped") || !strings.Contains(out, "budget_range") {
		t.Fatalf("ledger get: exit %d\n%s", code, out)
	}

	// locks list shows the held lock; release needs --force, then frees it.
	if code, out := run("locks", "list"); code != 0 || !strings.Contains(out, "p-000001") || !strings.Contains(out, l.Holder()) || !strings.Contains(out, "1 lock(s)") {
		t.Fatalf("locks list: exit %d\n%s", code, out)
	}
	if code, out := run("locks", "release", "--marketplace", "ops", "--posting", "p-000001"); code != 2 {
		t.Fatalf("release without --force: exit %d, want 2\n%s", code, out)
	}
	if rdb.Exists(ctx, l.Key()).Val() != 1 {
		t.Fatal("release without --force deleted the lock")
	}
	if code, out := run("locks", "release", "--marketplace", "ops", "--posting", "p-000001", "--force"); code != 0 {
		t.Fatalf("release --force: exit %d\n%s", code, out)
	}
	if rdb.Exists(ctx, l.Key()).Val() != 0 {
		t.Fatal("lock still there after release --force")
	}
	// The holder learns it lost the lock at its next renewal or release.
	if err := l.Release(ctx); err == nil {
		t.Fatal("the original holder's release succeeded after an operator released its lock")
	}

	// bid status and bid retract on a placed bid: the marketplace first,
	// then the ledger; a second retract sends nothing.
	ad, err := sandbox.New(marketplace.Config{ID: "ops", BaseURL: hs.URL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	page, err := ad.Scan(ctx, "", 5)
	if err != nil || len(page.Postings) < 2 {
		t.Fatalf("scan: %v", err)
	}
	p2 := page.Postings[1]
	pb, err := ad.PlaceBid(ctx, p2.ID, marketplace.Bid{Amount: p2.Budget.Min, Currency: p2.Budget.Currency, Proposal: "p", IdempotencyKey: "k2"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ = locks.Prepare("ops", p2.ID)
	led := ledger.New(rdb)
	c, err := led.Claim(ctx, a, "ops", p2.ID, ledger.Decision{State: ledger.StateIntent})
	if err != nil {
		t.Fatal(err)
	}
	held := a.Held(ctx, c.Token)
	if err := led.Settle(ctx, held, "ops", p2.ID, ledger.Outcome{State: ledger.StatePlaced, BidID: pb.ID, Amount: pb.Amount, Currency: pb.Currency, Release: true}); err != nil {
		t.Fatal(err)
	}
	held.MarkReleased()
	if code, out := run("bid", "status", "--marketplace", "ops", "--posting", p2.ID); code != 0 || !strings.Contains(out, "outcome:  pending") {
		t.Fatalf("bid status: exit %d\n%s", code, out)
	}
	if code, out := run("bid", "retract", "--marketplace", "ops", "--posting", p2.ID, "--reason", "test", "--by", "ops-test"); code != 0 || !strings.Contains(out, "retracted bid") {
		t.Fatalf("bid retract: exit %d\n%s", code, out)
	}
	if code, out := run("bid", "status", "--marketplace", "ops", "--posting", p2.ID, "--live"); code != 0 ||
		!strings.Contains(out, "outcome:  retracted") || !strings.Contains(out, `by "ops-test": "test"`) || !strings.Contains(out, "live:     retracted") {
		t.Fatalf("bid status after retract: exit %d\n%s", code, out)
	}
	if code, out := run("bid", "retract", "--marketplace", "ops", "--posting", p2.ID); code != 0 || !strings.Contains(out, "retracted already") {
		t.Fatalf("second retract: exit %d\n%s", code, out)
	}
	if code, out := run("bid", "retract", "--marketplace", "ops", "--posting", "p-000001"); code != 1 || !strings.Contains(out, "no placed bid") {
		t.Fatalf("retract of a skipped posting: exit %d\n%s", code, out)
	}
	if st := ms.Stats(); st.RetractedBids != 1 {
		t.Fatalf("the sandbox saw %d retracts, want 1", st.RetractedBids)
	}
}
