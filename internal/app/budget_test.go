package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// TestBudgetsPerAccount: in agency mode each account's bid budget counts
// under its own scope (worker.BudgetScope), so the status page and the
// summary line show one budget per account that has one, read from that
// scope: what alice spent and the postings waiting for her window, and
// bob's untouched budget, not a marketplace that looks unbudgeted.
func TestBudgetsPerAccount(t *testing.T) {
	rs := redistest.Start(t)
	path := filepath.Join(t.TempDir(), "bidder.yaml")
	if err := os.WriteFile(path, []byte(`
marketplaces:
  - id: fl
    adapter: sandbox
    base_url: http://127.0.0.1:9
    rules: {amount: {fixed: {strategy: fixed, amount: 100}}, proposal: {template: "hi"}}
    accounts:
      - {name: alice, token_env: TOK_A, rules: {bid_budget: {per_hour: 5}}}
      - {name: bob, token_env: TOK_B, rules: {bid_budget: {per_day: 7}}}
      - {name: carol, token_env: TOK_C}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDIS_URL": "redis://" + rs.Addr() + "/0", "TOK_A": "a", "TOK_B": "b", "TOK_C": "c"}
	reg, _ := Adapters()
	cfg, err := config.Load(config.Options{Path: path, Adapters: reg.Names(),
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := New(ctx, cfg, zap.NewNop(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	got := a.Markets["fl"].Budgets("fl")
	if len(got) != 2 || got[0].Account != "alice" || got[1].Account != "bob" {
		t.Fatalf("budgets %+v, want alice's and bob's (carol has none)", got)
	}
	alice := got[0]
	if alice.Scope != worker.BudgetScope("fl", "alice") || alice.Scope == "fl" {
		t.Fatalf("alice's scope %q", alice.Scope)
	}
	now := time.Now()
	for _, id := range []string{"x1", "x2"} {
		if ok, _, err := alice.Budget.Take(ctx, alice.Scope, id, now); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	opens := now.Truncate(time.Hour).Add(time.Hour)
	if err := rules.NewWaits(a.Conn.Client, "").Add(ctx, alice.Scope, "p-3", opens); err != nil {
		t.Fatal(err)
	}

	st := a.statusSource()(ctx, now.Add(-time.Hour), now)
	if len(st.Problems) > 0 {
		t.Fatalf("problems: %v", st.Problems)
	}
	if len(st.Marketplaces) != 1 {
		t.Fatalf("%d marketplaces", len(st.Marketplaces))
	}
	bs := st.Marketplaces[0].Budgets
	if len(bs) != 2 {
		t.Fatalf("page budgets %+v, want alice's and bob's", bs)
	}
	if b := bs[0]; b.Account != "alice" || b.HourLeft != 3 || b.DayLeft != -1 || len(b.Waits) != 1 || b.Waits[0].Postings != 1 {
		t.Errorf("alice on the page: %+v, want 3 left this hour, no day limit, 1 waiting", b)
	}
	if b := bs[1]; b.Account != "bob" || b.HourLeft != -1 || b.DayLeft != 7 || len(b.Waits) != 0 {
		t.Errorf("bob on the page: %+v, want 7 left today, nothing waiting", b)
	}

	s := a.snapshots(ctx)["fl"]
	if len(s.Budgets) != 2 || s.Budgets[0] != (BudgetLeft{Account: "alice", Hour: 3, Day: -1}) || s.Budgets[1] != (BudgetLeft{Account: "bob", Hour: -1, Day: 7}) {
		t.Errorf("summary budgets %+v", s.Budgets)
	}
}
