package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnknownKeySuggests: a mistyped key names the key it probably was.
func TestUnknownKeySuggests(t *testing.T) {
	tok := map[string]string{"TOK": "x"}
	for _, c := range []struct {
		name, doc string
		env       map[string]string
		want      string
	}{
		{"section key", "redis: {hots: x}\n", nil, "config: redis.hots: unknown key; did you mean host?"},
		{"top level", "loq: {level: info}\n", nil, "config: loq: unknown key; did you mean log?"},
		{"in a list item", goodMarket + "    scan: {shedule: x}\n", tok, "config: marketplaces[0].scan.shedule: unknown key; did you mean schedule?"},
		{"rules", strings.Replace(goodMarket, "strategy: fixed", "stratgey: fixed", 1), tok, "config: marketplaces[0].rules.amount.fixed.stratgey: unknown key; did you mean strategy?"},
		{"tls", "redis: {host: h, tls: {ca_fiel: x}}\n", nil, "config: redis.tls.ca_fiel: unknown key; did you mean ca_file?"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadDoc(t, c.doc, c.env, Flags{})
			if err == nil || err.Error() != c.want {
				t.Fatalf("got  %v\nwant %s", err, c.want)
			}
		})
	}
	// Nothing close: no guess.
	if _, err := loadDoc(t, "redis: {zzzzzz: 1}\n", nil, Flags{}); err == nil || err.Error() != "config: redis.zzzzzz: unknown key" {
		t.Fatalf("got %v", err)
	}
}

func TestFieldNames(t *testing.T) {
	got := strings.Join(fieldNames("config.Lock"), ",")
	if got != "ttl" {
		t.Fatalf("config.Lock: %s", got)
	}
	if fieldNames("config.Nope") != nil {
		t.Fatal("unknown type has fields")
	}
	if !strings.Contains(strings.Join(fieldNames("config.Config"), ","), "marketplaces") {
		t.Fatal("top level")
	}
}

// TestRedisURLAndHostBothSet: two addresses in the environment are an
// error, not a silent choice of one.
func TestRedisURLAndHostBothSet(t *testing.T) {
	env := map[string]string{EnvRedisURL: "redis://a:6379/0", EnvRedisHost: "b"}
	_, err := loadDoc(t, "", env, Flags{})
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "REDIS_URL") || !strings.Contains(err.Error(), "REDIS_HOST") {
		t.Fatalf("got %v", err)
	}
}

// TestEmbeddedSandboxNeedsInProcessRedis: an in-process sandbox's fake
// postings must never be recorded in a real Redis, under real posting IDs.
func TestEmbeddedSandboxNeedsInProcessRedis(t *testing.T) {
	const doc = `
marketplaces:
  - id: sandbox
    adapter: sandbox
    embedded: true
    rules:
      amount: {fixed: {strategy: fixed, amount: 100}}
      proposal: {template: "hi"}
`
	if _, err := loadDoc(t, doc, nil, Flags{}); err != nil {
		t.Fatalf("in-process Redis: %v", err)
	}
	for name, c := range map[string]struct {
		doc string
		env map[string]string
	}{
		"REDIS_URL":      {doc, map[string]string{EnvRedisURL: "redis://127.0.0.1:6379/0"}},
		"REDIS_HOST":     {doc, map[string]string{EnvRedisHost: "redis"}},
		"redis.host":     {"redis: {host: redis}\n" + doc, nil},
		"redis.sentinel": {"redis: {sentinel: {master_name: m, addrs: [\"s:26379\"]}}\n" + doc, nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadDoc(t, c.doc, c.env, Flags{})
			if err == nil || !strings.HasPrefix(err.Error(), "config: marketplaces[0].embedded: ") || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestNoFileWithRealRedis: with a real Redis in the environment and no
// file, the built-in demo (its in-process sandbox) is not used; the
// daemons refuse such a config (internal/app), operator commands only need
// the address.
func TestNoFileWithRealRedis(t *testing.T) {
	cfg, err := Load(Options{
		SearchPaths: []string{filepath.Join(t.TempDir(), "none.yaml")},
		LookupEnv:   envMap(map[string]string{EnvRedisURL: "redis://127.0.0.1:6379/0"}),
		Adapters:    adapters,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != NoFileSource || len(cfg.Marketplaces) != 0 || cfg.Redis.Mode() != ModeStandalone {
		t.Fatalf("source %q, %d marketplace(s), redis %s", cfg.Source, len(cfg.Marketplaces), cfg.Redis.Mode())
	}
}

func TestLogFormatDefaultsToAuto(t *testing.T) {
	cfg, err := loadDoc(t, "", nil, Flags{})
	if err != nil || cfg.Log.Format != LogFormatAuto {
		t.Fatalf("format %q, %v", cfg.Log.Format, err)
	}
	for _, f := range []string{"auto", "json", "console"} {
		if _, err := loadDoc(t, "log: {format: "+f+"}\n", nil, Flags{}); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, err := loadDoc(t, "log: {format: xml}\n", nil, Flags{}); err == nil || !strings.Contains(err.Error(), "auto, json or console") {
		t.Fatalf("got %v", err)
	}
}
