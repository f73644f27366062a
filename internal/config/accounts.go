package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/worker/rules"
)

// Account policies (marketplaces[].account_policy): what "never twice"
// means for a marketplace with several accounts.
const (
	// PolicyPerPosting (agency mode, the default): one bid per posting
	// across all the accounts. One ledger for the marketplace; the worker
	// picks the account that bids and the ledger records which.
	PolicyPerPosting = "per_posting"
	// PolicyPerAccount: each account bids on a posting at most once, so
	// two accounts may both bid on it. Each account becomes a marketplace
	// of its own, <id>-<name>, with its own ledger, locks and scans.
	PolicyPerAccount = "per_account"
)

// Account is one of a marketplace's accounts.
type Account struct {
	// Name is the account's stable, non-secret name: in idempotency keys
	// and in the ledger's records of its bids. [a-z0-9_-].
	Name      string `yaml:"name"`
	TokenEnv  string `yaml:"token_env"`
	TokenFile string `yaml:"token_file"`
	// Rules override the marketplace's rules for this account: a key set
	// here replaces the marketplace's (a list replaces the whole list);
	// the rest are the marketplace's. bid_budget here is this account's.
	Rules RulesOverride `yaml:"rules"`

	// Token is the resolved API token (never printed).
	Token string `yaml:"-"`
}

// RulesOverride is an account's rules section, applied over its
// marketplace's by Load.
type RulesOverride struct {
	node *yaml.Node
	// Resolved is the account's rules: the marketplace's, overridden.
	Resolved rules.Config
}

// UnmarshalYAML keeps the section: it can only be decoded once the
// marketplace's rules are known.
func (o *RulesOverride) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return fmt.Errorf("line %d: an account's rules must be a mapping", n.Line)
	}
	o.node = n
	return nil
}

// MarshalYAML prints the section as it was written.
func (o RulesOverride) MarshalYAML() (any, error) {
	if o.node == nil {
		return nil, nil
	}
	return o.node, nil
}

// resolve decodes the section over base, strictly.
func (o *RulesOverride) resolve(base rules.Config) error {
	o.Resolved = base
	if o.node == nil || o.node.Kind != yaml.MappingNode {
		return nil
	}
	b, err := yaml.Marshal(o.node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&o.Resolved); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			return errors.New(te.Errors[0])
		}
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// validateAccounts checks marketplace m's accounts (key is its path) and
// resolves their rules.
func validateAccounts(m *Marketplace, key string) error {
	if len(m.Accounts) == 0 {
		if m.AccountPolicy != "" {
			return errorf(key+".account_policy", "set only with accounts")
		}
		return nil
	}
	switch m.AccountPolicy {
	case "":
		m.AccountPolicy = PolicyPerPosting
	case PolicyPerPosting, PolicyPerAccount:
	default:
		return errorf(key+".account_policy", "want %s (one bid per posting across the accounts) or %s, got %q", PolicyPerPosting, PolicyPerAccount, m.AccountPolicy)
	}
	switch {
	case m.Embedded:
		return errorf(key+".accounts", "an embedded sandbox has one account; run the sandbox (bidder sandbox) and give its base_url")
	case m.TokenEnv != "" || m.TokenFile != "":
		return errorf(key+".accounts", "with accounts, each account has its own token_env or token_file, the marketplace none")
	case m.Account != "":
		return errorf(key+".account", "with accounts, each account has its own name")
	}
	seen := map[string]int{}
	for j := range m.Accounts {
		a := &m.Accounts[j]
		akey := fmt.Sprintf("%s.accounts[%d]", key, j)
		if err := lock.ValidateMarketplaceID(a.Name); err != nil {
			return errorf(akey+".name", "want 1-%d characters of [a-z0-9_-], got %q", lock.MaxMarketplaceIDLen, a.Name)
		}
		if k, dup := seen[a.Name]; dup {
			return errorf(akey+".name", "%q already used by accounts[%d]", a.Name, k)
		}
		seen[a.Name] = j
		if m.AccountPolicy == PolicyPerAccount {
			if id := m.ID + "-" + a.Name; len(id) > lock.MaxMarketplaceIDLen {
				return errorf(akey+".name", "the account's marketplace ID %q is longer than %d characters", id, lock.MaxMarketplaceIDLen)
			}
		}
		if (a.TokenEnv == "") == (a.TokenFile == "") {
			return errorf(akey, "set exactly one of token_env and token_file")
		}
		if err := a.Rules.resolve(m.Rules); err != nil {
			return errorf(akey+".rules", "%v", err)
		}
		if err := a.Rules.Resolved.Validate(); err != nil {
			return rulesError(akey, err)
		}
	}
	return nil
}

// expandAccounts turns each per-account marketplace into one marketplace
// per account (<id>-<name>), after validation and secrets, so everything
// downstream sees plain marketplaces. Agency-mode marketplaces stay one.
func expandAccounts(cfg *Config) error {
	var out []Marketplace
	seen := map[string]string{}
	for i, m := range cfg.Marketplaces {
		if m.AccountPolicy != PolicyPerAccount {
			out = append(out, m)
			seen[m.ID] = fmt.Sprintf("marketplaces[%d]", i)
			continue
		}
		for j, a := range m.Accounts {
			e := m
			e.ID, e.Account, e.Token, e.TokenEnv, e.TokenFile = m.ID+"-"+a.Name, a.Name, a.Token, a.TokenEnv, a.TokenFile
			e.Rules, e.Accounts, e.AccountPolicy = a.Rules.Resolved, nil, ""
			out = append(out, e)
			key := fmt.Sprintf("marketplaces[%d].accounts[%d]", i, j)
			if other, dup := seen[e.ID]; dup {
				return errorf(key+".name", "its marketplace ID %q is already %s's", e.ID, other)
			}
			seen[e.ID] = key
		}
	}
	cfg.Marketplaces = out
	return nil
}
