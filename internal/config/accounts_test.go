package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

const agencyDoc = `
marketplaces:
  - id: fl
    adapter: sandbox
    base_url: http://127.0.0.1:9090
    %s
    rules:
      keywords: {include: [golang, rust]}
      amount:
        fixed: {strategy: fixed, amount: 100}
        hourly: {strategy: fixed, amount: 30}
      proposal: {template: "I can do {{.Title}}."}
    accounts:
      - name: alice
        token_env: TOK_ALICE
        rules:
          bid_budget: {per_month: 100}
      - name: bob
        token_file: /secrets/tok
        rules:
          keywords: {include: [kubernetes]}
          amount:
            fixed: {strategy: fixed, amount: 250}
`

func TestAgencyAccountsResolveTheirRulesAndTokens(t *testing.T) {
	cfg, err := loadDoc(t, fmt.Sprintf(agencyDoc, ""), map[string]string{"TOK_ALICE": "alice-secret"}, Flags{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Marketplaces) != 1 {
		t.Fatalf("%d marketplaces, want the agency's one", len(cfg.Marketplaces))
	}
	m := cfg.Marketplaces[0]
	if m.AccountPolicy != PolicyPerPosting || len(m.Accounts) != 2 {
		t.Fatalf("policy %q, %d accounts; want per_posting (the default), 2", m.AccountPolicy, len(m.Accounts))
	}
	alice, bob := m.Accounts[0], m.Accounts[1]
	if alice.Token != "alice-secret" || bob.Token != "file-token" {
		t.Fatalf("tokens %q %q", alice.Token, bob.Token)
	}
	// alice: the marketplace's rules and her own budget.
	if ar := alice.Rules.Resolved; !slices.Equal(ar.Keywords.Include, []string{"golang", "rust"}) || ar.BidBudget.PerMonth != 100 || ar.Amount.Fixed.Amount != 100 {
		t.Fatalf("alice's rules %+v", ar)
	}
	// bob: his keywords replace the list, his fixed amount the amount; the
	// hourly amount and no budget are the marketplace's.
	if br := bob.Rules.Resolved; !slices.Equal(br.Keywords.Include, []string{"kubernetes"}) || br.Amount.Fixed.Amount != 250 || br.Amount.Hourly.Amount != 30 || br.BidBudget.PerMonth != 0 {
		t.Fatalf("bob's rules %+v", br)
	}
	// The marketplace's own rules are untouched by the overrides.
	if !slices.Equal(m.Rules.Keywords.Include, []string{"golang", "rust"}) || m.Rules.Amount.Fixed.Amount != 100 {
		t.Fatalf("marketplace rules changed: %+v", m.Rules)
	}
	if s := fmt.Sprintf("%+v", cfg.Redacted()); strings.Contains(s, "alice-secret") || strings.Contains(s, "file-token") {
		t.Fatal("an account token is in the redacted config")
	}
}

func TestPerAccountPolicyMakesOneMarketplacePerAccount(t *testing.T) {
	cfg, err := loadDoc(t, fmt.Sprintf(agencyDoc, "account_policy: per_account"), map[string]string{"TOK_ALICE": "alice-secret"}, Flags{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range cfg.Marketplaces {
		ids = append(ids, m.ID)
		if len(m.Accounts) != 0 {
			t.Fatalf("%s still lists accounts", m.ID)
		}
	}
	if !slices.Equal(ids, []string{"fl-alice", "fl-bob"}) {
		t.Fatalf("marketplaces %v, want fl-alice, fl-bob", ids)
	}
	a, b := cfg.Marketplaces[0], cfg.Marketplaces[1]
	if a.Account != "alice" || a.Token != "alice-secret" || a.Rules.BidBudget.PerMonth != 100 || b.Account != "bob" || b.Token != "file-token" || b.Rules.Amount.Fixed.Amount != 250 {
		t.Fatalf("expanded %+v / %+v", a, b)
	}
	if a.Scan != b.Scan || a.BaseURL != b.BaseURL {
		t.Fatal("the accounts' marketplaces differ beyond their account")
	}
}

func TestAccountConfigErrorsNameTheKey(t *testing.T) {
	env := map[string]string{"TOK_ALICE": "x"}
	for _, c := range []struct{ doc, key, problem string }{
		{fmt.Sprintf(agencyDoc, "account_policy: agency"), "marketplaces[0].account_policy", "per_posting"},
		{fmt.Sprintf(agencyDoc, "token_env: TOK"), "marketplaces[0].accounts", "each account has its own"},
		{fmt.Sprintf(agencyDoc, "account: ops"), "marketplaces[0].account", "own name"},
		{strings.Replace(fmt.Sprintf(agencyDoc, ""), "name: bob", "name: alice", 1), "marketplaces[0].accounts[1].name", "already used"},
		{strings.Replace(fmt.Sprintf(agencyDoc, ""), "name: bob", "name: Bob!", 1), "marketplaces[0].accounts[1].name", "[a-z0-9_-]"},
		{strings.Replace(fmt.Sprintf(agencyDoc, ""), "bid_budget: {per_month: 100}", "bid_budjet: {per_month: 100}", 1), "marketplaces[0].accounts[0].rules", "bid_budjet"},
		{strings.Replace(fmt.Sprintf(agencyDoc, ""), "bid_budget: {per_month: 100}", "bid_budget: {per_month: -1}", 1), "marketplaces[0].accounts[0].rules.bid_budget.per_month", ">= 0"},
		{strings.Replace(fmt.Sprintf(agencyDoc, ""), "        token_file: /secrets/tok\n", "", 1), "marketplaces[0].accounts[1]", "token_env and token_file"},
	} {
		_, err := loadDoc(t, c.doc, env, Flags{})
		var ce *Error
		if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) || ce.Key != c.key || !strings.Contains(ce.Problem, c.problem) {
			t.Errorf("want %s: ...%s..., got %v", c.key, c.problem, err)
		}
	}
}
