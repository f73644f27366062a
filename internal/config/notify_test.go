package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const goodNotify = `
notify:
  enabled: true
  events: [bid_placed, posting_parked]
  channels:
    - {name: hooks, type: webhook, url: "https://example.com/bidder", secret_env: HOOK_SECRET}
    - {name: ops, type: slack, url_file: /secrets/slack, events: [posting_parked]}
    - {name: tg, type: telegram, token_env: TG_TOKEN, chat_id: "-100123", rate_per_second: 0.5}
`

var notifyEnv = map[string]string{"TOK": "t", "HOOK_SECRET": "hook-Secret-1", "TG_TOKEN": "123:tg-Secret-2"}

func TestNotifyLoadsAndRedacts(t *testing.T) {
	cfg, err := loadDocFiles(t, goodNotify+goodMarket, notifyEnv, map[string]string{
		"/secrets/slack": "https://hooks.slack.com/services/T/B/slack-Secret-3\n"})
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Notify
	if !n.Enabled || time.Duration(n.SweepEvery) != 2*time.Second || n.MaxRetry != 20 || len(n.Channels) != 3 {
		t.Fatalf("notify %+v", n)
	}
	if n.Channels[0].Secret != "hook-Secret-1" || n.Channels[1].Secret != "https://hooks.slack.com/services/T/B/slack-Secret-3" ||
		n.Channels[2].Secret != "123:tg-Secret-2" {
		t.Fatalf("secrets not resolved: %+v", n.Channels)
	}
	if n.Channels[0].RatePerSecond != 10 || n.Channels[1].RatePerSecond != 1 || n.Channels[2].RatePerSecond != 0.5 {
		t.Fatalf("rates %+v", n.Channels)
	}
	out, err := yaml.Marshal(cfg.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "Secret-") {
		t.Fatalf("a secret in the printed config:\n%s", out)
	}
	if cfg.Notify.Channels[0].Secret != "hook-Secret-1" {
		t.Fatal("Redacted changed the original")
	}
	if r := cfg.Redacted().Notify.Channels[1]; r.Secret != RedactedSecret || r.URLFile != "/secrets/slack" {
		t.Fatalf("redacted channel %+v", r)
	}
}

func TestNotifyOffNeedsNoSecrets(t *testing.T) {
	doc := strings.Replace(goodNotify, "enabled: true", "enabled: false", 1)
	cfg, err := loadDoc(t, doc+goodMarket, map[string]string{"TOK": "t"}, Flags{})
	if err != nil || cfg.Notify.Enabled {
		t.Fatalf("%+v, %v", cfg.Notify, err)
	}
}

// Each bad channel is one line naming the key and the problem, and no
// message quotes a credential.
func TestNotifyValidation(t *testing.T) {
	ch := func(s string) string {
		return "notify:\n  enabled: true\n  channels:\n    - {name: a, type: webhook, url: \"https://e.com/\", secret_env: HOOK_SECRET}\n    - " + s + "\n"
	}
	for _, c := range []struct{ doc, want string }{
		{ch(`{name: b, type: webhook, url: "http://e.com/x", secret_env: HOOK_SECRET}`), "config: notify.channels[1].url: want an https URL (http only to a loopback address)"},
		{ch(`{name: b, type: webhook, url: "ftp://e.com/x", secret_env: HOOK_SECRET}`), `config: notify.channels[1].url: want an https URL, got "ftp://e.com/x"`},
		{ch(`{name: b, type: webhook, url: "https://u:Secret-9@e.com/", secret_env: HOOK_SECRET}`), "config: notify.channels[1].url: must not hold credentials in the URL"},
		{ch(`{name: b, type: webhook, url: "https://e.com/"}`), "config: notify.channels[1]: set exactly one of secret_env and secret_file"},
		{ch(`{name: b, type: webhook, secret_env: HOOK_SECRET}`), "config: notify.channels[1].url: required for a webhook channel"},
		{ch(`{name: b, type: slack, url: "https://hooks.slack.com/services/Secret-9"}`), "config: notify.channels[1].url: a Slack webhook URL is a credential"},
		{ch(`{name: b, type: slack, url_env: S, chat_id: x}`), "config: notify.channels[1].chat_id: not used by a slack channel"},
		{ch(`{name: b, type: telegram, token_env: TG_TOKEN}`), "config: notify.channels[1].chat_id: required for a telegram channel"},
		{ch(`{name: b, type: telegram, chat_id: "1"}`), "config: notify.channels[1]: set exactly one of token_env and token_file"},
		{ch(`{name: b, type: sms}`), `config: notify.channels[1].type: want webhook, slack or telegram, got "sms"`},
		{ch(`{name: a, type: slack, url_env: S}`), `config: notify.channels[1].name: "a" already used by notify.channels[0]`},
		{ch(`{name: "Bad Name", type: slack, url_env: S}`), "config: notify.channels[1].name: want 1-64 of a-z"},
		{ch(`{name: b, type: slack, url_env: S, events: [bid_lost]}`), `config: notify.channels[1].events[0]: unknown event "bid_lost"`},
		{ch(`{name: b, type: slack, url_env: S, rate_per_second: -1}`), "config: notify.channels[1].rate_per_second: must not be negative"},
		{ch(`{name: b, type: slack, url_env: S, ulr_env: x}`), "config: notify.channels[1].ulr_env: unknown key; did you mean url_env?"},
		{ch(`{name: b, type: slack, url_env: UNSET}`), "config: notify.channels[1].url_env: environment variable UNSET is not set"},
		{ch(`{name: b, type: slack, url_env: BADSLACK}`), "config: notify.channels[1].url_env: want an https URL"},
		{"notify: {enabled: true}\n", "config: notify.channels: required with notify.enabled"},
		{"notify: {sweep_every: 0s}\n", "config: notify.sweep_every: want >= 100ms"},
		{"notify: {max_retry: 0}\n", "config: notify.max_retry: want >= 1, got 0"},
		{"notify: {events: [bid_placed, nope]}\n", `config: notify.events[1]: unknown event "nope"`},
	} {
		env := map[string]string{"TOK": "t", "HOOK_SECRET": "hook-Secret-9", "BADSLACK": "http://hooks.slack.com/Secret-9"}
		_, err := loadDoc(t, c.doc+goodMarket, env, Flags{})
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s\ngot  %v\nwant %s", c.doc, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "Secret-9") || strings.Contains(err.Error(), "\n") {
			t.Errorf("message quotes a secret or spans lines: %v", err)
		}
	}
}
