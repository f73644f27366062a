package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var adapters = []string{"sandbox"}

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func loadDoc(t *testing.T, doc string, env map[string]string, flags Flags) (Config, error) {
	t.Helper()
	files := map[string][]byte{"bidder.yaml": []byte(doc), "/secrets/tok": []byte(" file-token \n")}
	return Load(Options{
		Path:      "bidder.yaml",
		LookupEnv: envMap(env),
		ReadFile: func(p string) ([]byte, error) {
			if b, ok := files[p]; ok {
				return b, nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		},
		Adapters: adapters,
		Flags:    flags,
	})
}

const goodMarket = `
marketplaces:
  - id: mp1
    adapter: sandbox
    base_url: http://127.0.0.1:9090
    token_env: TOK
    rules:
      amount:
        fixed: {strategy: fixed, amount: 100}
      proposal:
        template: "hi {{.Title}}"
`

func TestExamplesLoad(t *testing.T) {
	env := map[string]string{
		"SANDBOX_TOKEN": "t", "REDIS_PASSWORD": "p", "REDIS_SENTINEL_PASSWORD": "sp", "BIDDER_UI_PASSWORD": "ui",
	}
	for _, name := range []string{"embedded.yaml", "single.yaml", "production-sentinel.yaml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", "..", "configs", name)
			_, err := Load(Options{
				Path: path, LookupEnv: envMap(env), Adapters: adapters,
				ReadFile: func(p string) ([]byte, error) {
					if strings.HasPrefix(p, "/run/secrets/") {
						return []byte("tok"), nil
					}
					return os.ReadFile(p)
				},
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEmbeddedCopyIsCurrent(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "embedded.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, embeddedYAML) {
		t.Fatal("configs/embedded.yaml differs from internal/config/embedded.yaml; copy one onto the other")
	}
}

func TestNoFileMeansEmbedded(t *testing.T) {
	cfg, err := Load(Options{SearchPaths: []string{filepath.Join(t.TempDir(), "none.yaml")}, LookupEnv: envMap(nil), Adapters: adapters})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != EmbeddedSource || cfg.Redis.Mode() != ModeEmbedded || len(cfg.Marketplaces) != 1 || !cfg.Marketplaces[0].Embedded {
		t.Fatalf("got %+v", cfg)
	}
}

func TestPrecedence(t *testing.T) {
	doc := "http: {addr: 127.0.0.1:1111}\nlog: {level: warn}\nredis: {url: redis://file:6379/0}\n" + goodMarket
	env := map[string]string{"TOK": "x", EnvHTTPAddr: "127.0.0.1:2222", EnvLogLevel: "error", EnvRedisHost: "envhost", EnvRedisPort: "7000"}
	cfg, err := loadDoc(t, doc, env, Flags{HTTPAddr: "127.0.0.1:3333"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:3333" || cfg.Log.Level != "error" || cfg.Redis.URL != "" || cfg.Redis.Host != "envhost" || cfg.Redis.Port != 7000 {
		t.Fatalf("got http %q log %q redis %+v", cfg.HTTP.Addr, cfg.Log.Level, cfg.Redis)
	}
	// Defaults survive where neither says anything.
	if cfg.Lock.TTL != Duration(30*time.Second) || cfg.Worker.Queues["scans"] != 3 || cfg.Marketplaces[0].Scan.Schedule != DefaultSchedule {
		t.Fatalf("defaults lost: %+v", cfg)
	}
}

func TestBadConfigs(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		env       map[string]string
		want      string
	}{
		{"unknown key", "redis: {hots: x}\n", nil, "config: redis.hots: unknown key"},
		{"unknown nested", goodMarket + "    scan: {shedule: x}\n", map[string]string{"TOK": "x"}, "config: marketplaces[0].scan.shedule: unknown key"},
		{"wrong type", "worker:\n  concurrency: lots\n", nil, `config: worker.concurrency: want an integer, got "lots"`},
		{"bad duration", "lock:\n  ttl: 30 seconds\n", nil, `config: lock.ttl: invalid duration "30 seconds"`},
		{"bad cron", goodMarket + "    scan: {schedule: \"* *\"}\n", map[string]string{"TOK": "x"}, `config: marketplaces[0].scan.schedule: bad cron spec "* *"`},
		{"missing secret env", goodMarket, nil, "config: marketplaces[0].token_env: environment variable TOK is not set"},
		{"unknown adapter", strings.Replace(goodMarket, "adapter: sandbox", "adapter: upwork", 1), map[string]string{"TOK": "x"}, `config: marketplaces[0].adapter: unknown adapter "upwork"`},
		{"bad id", strings.Replace(goodMarket, "id: mp1", "id: Bad.ID", 1), map[string]string{"TOK": "x"}, `config: marketplaces[0].id: `},
		{"bad rules", strings.Replace(goodMarket, "amount: 100", "amount: -5", 1), map[string]string{"TOK": "x"}, `config: marketplaces[0].rules.amount.fixed.amount: `},
		{"remote ui", "http: {addr: 0.0.0.0:8080}\n", nil, "config: http.monitoring: refusing"},
		{"env type", "", map[string]string{EnvRedisPort: "six"}, "config: REDIS_PORT (env): want a port number"},
		{"bad url", "redis: {url: \"http://u:hunter2@h\"}\n", nil, `config: redis.url: want a redis:// or rediss:// URL`},
		{"syntax", "redis: [\n", nil, "config: bidder.yaml: invalid YAML"},
		{"token file missing", strings.Replace(goodMarket, "token_env: TOK", "token_file: /nope", 1), nil, `config: marketplaces[0].token_file: cannot read "/nope"`},
		{"basic auth env", "http: {monitoring: {basic_auth: {username: ops, password_env: UIPW}}}\n", nil, "config: http.monitoring.basic_auth.password_env: environment variable UIPW is not set"},
		{"tracker too often", "tracker: {every: 10s}\n", nil, "config: tracker.every: want >= 1m or 0 (off), got 10s"},
		{"tracker horizon", "tracker: {repoll: 2h, horizon: 1h}\n", nil, "config: tracker.horizon: want >= tracker.repoll (2h0m0s), got 1h0m0s"},
		{"actions without auth", "http: {actions: {enabled: true}}\n", nil, "config: http.actions.enabled: needs http.monitoring.basic_auth"},
		{"settle below timeout", "worker: {settle_delay: 5s}\n" + goodMarket, map[string]string{"TOK": "x"}, "config: marketplaces[0].request_timeout: 10s (the default when unset is 10s) must be shorter than worker.settle_delay (5s)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadDoc(t, c.doc, c.env, Flags{})
			if err == nil || !strings.HasPrefix(err.Error(), c.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v\nwant prefix %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("message must be one line without secrets: %q", err)
			}
		})
	}
}

// TestActionsKey: the status page's buttons are off unless asked for, and
// then only with the monitoring credentials to guard them.
func TestActionsKey(t *testing.T) {
	cfg, err := loadDoc(t, "", nil, Flags{})
	if err != nil || cfg.HTTP.Actions.Enabled {
		t.Fatalf("default: actions enabled=%v, %v; want off", cfg.HTTP.Actions.Enabled, err)
	}
	doc := "http: {actions: {enabled: true}, monitoring: {basic_auth: {username: ops, password_env: UIPW}}}\n"
	cfg, err = loadDoc(t, doc, map[string]string{"UIPW": "pw"}, Flags{})
	if err != nil || !cfg.HTTP.Actions.Enabled || cfg.HTTP.Monitoring.BasicAuth.Password != "pw" {
		t.Fatalf("with basic auth: %+v, %v", cfg.HTTP, err)
	}
}

func TestSecretsAndRedaction(t *testing.T) {
	doc := "redis: {url: \"redis://user:s3cret-pw@db:6379/2\"}\n" + strings.Replace(goodMarket, "token_env: TOK", "token_file: /secrets/tok", 1)
	cfg, err := loadDoc(t, doc, nil, Flags{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Marketplaces[0].Token != "file-token" {
		t.Fatalf("token %q", cfg.Marketplaces[0].Token)
	}
	out, err := yaml.Marshal(cfg.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret-pw") || strings.Contains(string(out), "file-token") {
		t.Fatalf("secret printed:\n%s", out)
	}
	if !strings.Contains(string(out), "redis://user:xxxxx@db:6379/2") {
		t.Fatalf("URL not redacted as expected:\n%s", out)
	}
	if cfg.Redis.URL != "redis://user:s3cret-pw@db:6379/2" {
		t.Fatal("Redacted changed the original")
	}

	env := map[string]string{EnvRedisPassword: "pw-from-env", "TOK": "x"}
	cfg, err = loadDoc(t, "redis: {host: db}\n"+goodMarket, env, Flags{})
	if err != nil || cfg.Redis.Password != "pw-from-env" {
		t.Fatalf("REDIS_PASSWORD not read: %v %q", err, cfg.Redis.Password)
	}
}

func TestAllowedHostsKey(t *testing.T) {
	cfg, err := loadDoc(t, "http: {allowed_hosts: [bidder.internal, 10.0.0.5, \"::1\", \"[fd00::1]\"]}\n", nil, Flags{})
	if err != nil || len(cfg.HTTP.AllowedHosts) != 4 {
		t.Fatalf("got %v %v", cfg.HTTP.AllowedHosts, err)
	}
	for _, bad := range []string{"http://bidder.internal", "bidder.internal:8080", "*.example.com", "", "a b"} {
		_, err := loadDoc(t, "http: {allowed_hosts: [ok.example, \""+bad+"\"]}\n", nil, Flags{})
		if err == nil || !strings.HasPrefix(err.Error(), "config: http.allowed_hosts[1]: ") {
			t.Errorf("allowed_hosts %q: got %v", bad, err)
		}
	}
}
