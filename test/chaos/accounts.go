package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/marketplace/sandbox"
)

// Account policies of a run (Config.Accounts): the main marketplace bids
// from two accounts, alice and bob, under bidder's account_policy.
const (
	AccountsPerPosting = "per_posting" // agency mode: one bid per posting across both
	AccountsPerAccount = "per_account" // each account bids at most once per posting
)

// chaosAccounts are the run's two accounts and the sandbox tokens they bid
// with (the sandbox names an account by its token's hash).
var chaosAccounts = []struct{ name, token, env string }{
	{"alice", "chaos-alice", "BIDDER_CHAOS_TOKEN_ALICE"},
	{"bob", "chaos-bob", "BIDDER_CHAOS_TOKEN_BOB"},
}

// accountEnv is what every bidder process needs for the accounts' tokens.
func (c *Config) accountEnv() []string {
	if c.Accounts == "" {
		return nil
	}
	var env []string
	for _, a := range chaosAccounts {
		env = append(env, a.env+"="+a.token)
	}
	return env
}

// sandboxTokens is the sandbox's --tokens.
func (c *Config) sandboxTokens() string {
	toks := []string{sandboxToken}
	if c.Accounts != "" {
		for _, a := range chaosAccounts {
			toks = append(toks, a.token)
		}
	}
	return strings.Join(toks, ",")
}

// accountsYAML replaces the main marketplace's token with the two
// accounts. Bob's rules also take the low-rated clients alice's skip. In
// agency mode alice's bid budget runs out within the run, so bob bids on
// the rest; per account a spent budget would leave her postings waiting
// for the next hour, so there her rules are stricter instead.
func (c *Config) accountsYAML() string {
	alice := fmt.Sprintf("bid_budget: {per_hour: %d}", max(c.InitialPostings/3, 10))
	if c.Accounts == AccountsPerAccount {
		alice = "client: {min_rating: 3.5}"
	}
	return fmt.Sprintf(`    account_policy: %s
    accounts:
      - name: alice
        token_env: %s
        rules:
          %s
      - name: bob
        token_env: %s
        rules:
          client: {min_rating: 0}
`, c.Accounts, chaosAccounts[0].env, alice, chaosAccounts[1].env)
}

// trackerYAML polls outcomes as fast as bidder allows (tracker.every and
// repoll >= 1m), so that every placed bid's outcome is recorded by the end.
func (c *Config) trackerYAML() string {
	if c.Accounts == "" {
		return ""
	}
	return "tracker:\n  every: 1m\n  first_after: 2s\n  repoll: 1m\n"
}

// market is one marketplace of bidder's config and the sandbox behind it.
type market struct {
	id      string
	sb      *sandboxInst
	account string // per_account: the account whose marketplace this is
}

// setMarkets lists the config's marketplaces: one per sandbox, or with
// per_account one per account on the main sandbox.
func (h *Harness) setMarkets() {
	h.markets = nil
	for _, sb := range h.sandboxes {
		if sb.id == marketplaceMain && h.cfg.Accounts == AccountsPerAccount {
			for _, a := range chaosAccounts {
				h.markets = append(h.markets, market{id: sb.id + "-" + a.name, sb: sb, account: a.name})
			}
			continue
		}
		h.markets = append(h.markets, market{id: sb.id, sb: sb})
	}
}

// sandboxBids reads every bid the sandbox holds, with its account and
// outcome, from the harness-only admin port.
func (h *Harness) sandboxBids(ctx context.Context, sb *sandboxInst) ([]sandbox.BidOutcome, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+sb.admin+"/bids", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+h.adminToken)
	resp, err := h.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /bids: %s", resp.Status)
	}
	var out []sandbox.BidOutcome
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// accountRecord is what the harness reads of a placed record.
type accountRecord struct{ state, bid, account, outcome string }

func (h *Harness) accountRecords(ctx context.Context, mp string, posts []Posting) ([]accountRecord, error) {
	cmds := make([]*redis.SliceCmd, len(posts))
	_, err := h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ps := range posts {
			cmds[i] = p.HMGet(ctx, ledgerKey(mp, ps.ID), "s", "b", "ac", "o")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]accountRecord, len(posts))
	for i, c := range cmds {
		v := c.Val()
		var f [4]string
		for k := range min(len(v), 4) {
			f[k], _ = v[k].(string)
		}
		out[i] = accountRecord{f[0], f[1], f[2], f[3]}
	}
	return out, nil
}

// accountNames maps the sandbox's account names to the config's.
func accountNames() map[string]string {
	m := map[string]string{}
	for _, a := range chaosAccounts {
		m[sandbox.AccountFromToken(a.token)] = a.name
	}
	return m
}

// accountsState compares the ledger with the sandbox's bids, at the
// policy's level: "" when every bid is recorded as placed by its account
// with its outcome (outcomes: also the awarded or rejected ones), else
// what is not yet.
func (h *Harness) accountsState(ctx context.Context, posts map[string][]Posting, outcomes bool) (string, AccountsReport, error) {
	var rep AccountsReport
	sb := h.sandboxes[0]
	bids, err := h.sandboxBids(ctx, sb)
	if err != nil {
		return "", rep, err
	}
	names := accountNames()
	// The ledger marketplace each account's bids are recorded in.
	ledgerOf := func(account string) string {
		if h.cfg.Accounts == AccountsPerAccount {
			return marketplaceMain + "-" + account
		}
		return marketplaceMain
	}
	recs := map[string]map[string]accountRecord{}
	placed := map[string]int{}
	for _, m := range h.markets {
		if m.sb != sb {
			continue
		}
		rs, err := h.accountRecords(ctx, m.id, posts[m.id])
		if err != nil {
			return "", rep, err
		}
		recs[m.id] = map[string]accountRecord{}
		for i, r := range rs {
			recs[m.id][posts[m.id][i].ID] = r
			if r.state == "placed" {
				placed[m.id]++
			}
		}
	}
	rep.Bids, rep.ByAccount, rep.Outcomes = len(bids), map[string]int{}, map[string]int{}
	var problems []string
	seen := map[[2]string]bool{}
	perPosting := map[string]int{}
	for _, b := range bids {
		name := names[b.Account]
		rep.ByAccount[name]++
		perPosting[b.PostingID]++
		if perPosting[b.PostingID] == 2 {
			rep.PostingsWithTwo++
		}
		if seen[[2]string{b.PostingID, name}] {
			rep.Duplicates++
		}
		seen[[2]string{b.PostingID, name}] = true
		mp := ledgerOf(name)
		r := recs[mp][b.PostingID]
		wantAccount := name
		if h.cfg.Accounts == AccountsPerAccount {
			wantAccount = "" // its own marketplace: one account
		}
		switch {
		case r.state != "placed" || r.bid != b.BidID || r.account != wantAccount:
			problems = append(problems, fmt.Sprintf("%s's bid %s on %s: ledger %s has %+v", name, b.BidID, b.PostingID, mp, r))
		case outcomes && b.Outcome.Decided() && r.outcome != string(b.Outcome):
			rep.OutcomesPending++
		default:
			if r.outcome != "" {
				rep.Outcomes[r.outcome]++
			}
		}
	}
	for mp, n := range placed {
		want := 0
		for _, b := range bids {
			if ledgerOf(names[b.Account]) == mp {
				want++
			}
		}
		if n != want {
			problems = append(problems, fmt.Sprintf("%s: %d placed records, the sandbox holds %d bids of its account(s)", mp, n, want))
		}
	}
	if rep.OutcomesPending > 0 {
		problems = append(problems, fmt.Sprintf("%d decided bids' outcomes not yet in the ledger", rep.OutcomesPending))
	}
	if len(problems) > 5 {
		problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
	}
	return strings.Join(problems, "; "), rep, nil
}

// AccountsReport is what a run with two accounts found.
type AccountsReport struct {
	Policy          string         `json:"policy"`
	Bids            int            `json:"bids"`
	ByAccount       map[string]int `json:"by_account"`
	PostingsWithTwo int            `json:"postings_with_two_bids"` // agency mode: must be 0
	Duplicates      int            `json:"duplicates"`             // one account twice on one posting: must be 0
	Outcomes        map[string]int `json:"outcomes"`               // as the ledger recorded them
	OutcomesPending int            `json:"outcomes_pending"`       // decided by the sandbox, not in the ledger
}

func (r *AccountsReport) String() string {
	return fmt.Sprintf("policy %s: %d bids %s, postings with two bids %d, same account twice %d, outcomes %s",
		r.Policy, r.Bids, kv(r.ByAccount), r.PostingsWithTwo, r.Duplicates, kv(r.Outcomes))
}

// waitAccounts waits until every bid is recorded with its outcome, then
// checks the policy: per_posting, no posting has two bids; either, no
// account bid twice on one posting.
func (h *Harness) waitAccounts(ctx context.Context, rep *Report, posts map[string][]Posting, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	var why string
	var ar AccountsReport
	var err error
	for {
		last := why
		why, ar, err = h.accountsState(ctx, posts, true)
		if err != nil {
			if last != "" {
				err = fmt.Errorf("%w (still not done at the last look: %s)", err, last)
			}
			rep.fail("accounts: %v", err)
			return
		}
		if why == "" || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	ar.Policy = h.cfg.Accounts
	rep.Accounts = &ar
	if why != "" {
		rep.fail("accounts, %s after the drain: %s", timeout, why)
	}
	if ar.Duplicates > 0 {
		rep.fail("accounts: %d bids by an account on a posting it had bid on", ar.Duplicates)
	}
	if h.cfg.Accounts == AccountsPerPosting && ar.PostingsWithTwo > 0 {
		rep.fail("accounts (agency mode): %d postings have bids of both accounts", ar.PostingsWithTwo)
	}
	if ar.ByAccount["alice"] == 0 || ar.ByAccount["bob"] == 0 {
		rep.fail("accounts: bids by account %s: the run needs both to bid", kv(ar.ByAccount))
	}
}

// checkAccountMarkets is checkMarketplace for the main sandbox of a run
// with two accounts: "never twice" at the policy's level, every posting
// final in the ledger of each of bidder's marketplaces on it, and every
// bid recorded as placed by its account.
func (h *Harness) checkAccountMarkets(ctx context.Context, rep *Report, sb *sandboxInst, posts map[string][]Posting) {
	st, err := SandboxStatsOf(ctx, h.http, sb.url)
	if err != nil {
		rep.fail("%s: GET /v1/stats: %v", sb.id, err)
	}
	rep.Stats = st
	rep.Bids += st.Bids
	if st.DuplicateBids != 0 {
		rep.fail("%s: sandbox counted duplicate_bids=%d (one account twice on a posting; want 0)", sb.id, st.DuplicateBids)
	}
	if h.cfg.Accounts == AccountsPerPosting && st.PostingsWithMultipleBids != 0 {
		rep.fail("%s: agency mode, yet the sandbox counted postings_with_multiple_bids=%d (want 0)", sb.id, st.PostingsWithMultipleBids)
	}
	for _, m := range h.markets {
		if m.sb != sb {
			continue
		}
		recs, err := ledgerRecords(ctx, h.rdb, m.id, posts[m.id])
		if err != nil {
			rep.fail("ledger read: %v", err)
			return
		}
		var undecided []string
		for i, r := range recs {
			name := r.State
			if name == "" {
				name = "none"
			}
			rep.Ledger[name]++
			if !isFinal(r.State) {
				undecided = append(undecided, posts[m.id][i].ID+"="+name)
			}
		}
		if len(undecided) > 0 {
			rep.fail("%s: %d postings not final at the end (e.g. %s)", m.id, len(undecided), strings.Join(undecided[:min(10, len(undecided))], ", "))
		}
	}
	why, _, err := h.accountsState(ctx, posts, false)
	if err != nil {
		rep.fail("accounts: %v", err)
	} else if why != "" {
		rep.fail("accounts: %s", why)
	}
}
