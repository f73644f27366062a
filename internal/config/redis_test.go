package config

import (
	"strings"
	"testing"
	"time"
)

func TestRedisScaleKeys(t *testing.T) {
	files := map[string]string{"/run/redis-pw": "file-pw\n", "/run/sent-pw": "sent-pw"}
	doc := `
redis:
  sentinel: {master_name: mymaster, addrs: ["s1:26379", "s2:26379"], password_file: /run/sent-pw, username: sentuser}
  username_env: RUSER
  password_file: /run/redis-pw
  tls: {enabled: true, ca_file: /ca.pem, server_name: redis.internal}
  pool_size: 50
  dial_timeout: 2s
  read_timeout: 1s
  write_timeout: 1s
ledger: {wait_replicas: 1, wait_timeout: 50ms}
` + goodMarket
	cfg, err := loadDocFiles(t, doc, map[string]string{"TOK": "x", "RUSER": "bidder"}, files)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Redis
	if r.Password != "file-pw" || r.Sentinel.Password != "sent-pw" || r.Username != "bidder" || !r.TLSOn() ||
		r.PoolSize != 50 || time.Duration(r.ReadTimeout) != time.Second || cfg.Ledger.WaitReplicas != 1 {
		t.Fatalf("got %+v ledger %+v", r, cfg.Ledger)
	}
	red := cfg.Redacted()
	if red.Redis.Password != RedactedSecret || red.Redis.Sentinel.Password != RedactedSecret {
		t.Fatalf("not redacted: %+v", red.Redis)
	}
	if red.Redis.Username != "bidder" {
		t.Fatalf("username redacted: %q", red.Redis.Username)
	}

	// REDIS_USERNAME when the file names none.
	cfg, err = loadDocFiles(t, "redis: {host: db}\n"+goodMarket, map[string]string{"TOK": "x", EnvRedisUsername: "envuser"}, nil)
	if err != nil || cfg.Redis.Username != "envuser" {
		t.Fatalf("REDIS_USERNAME: %v %q", err, cfg.Redis.Username)
	}
}

func TestRedisScaleValidation(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"cluster needs tags", "redis: {cluster: {addrs: [\"a:1\"]}}\n", "redis.hash_tags: must be true with cluster"},
		{"tls off", "redis: {host: h, tls: {ca_file: /ca}}\n", "redis.tls: settings given but TLS is off"},
		{"tls contradicts url", "redis: {url: \"redis://h:1/0\", tls: {enabled: true}}\n", "redis.tls.enabled: contradicts"},
		{"cert without key", "redis: {url: \"rediss://h:1/0\", tls: {cert_file: /c}}\n", "redis.tls: set cert_file and key_file together"},
		{"two passwords", "redis: {host: h, password_env: A, password_file: /b}\n", "redis.password_file: set password_env or password_file"},
		{"two usernames", "redis: {host: h, username: a, username_env: B}\n", "redis.username_env: set username or username_env"},
		{"negative pool", "redis: {host: h, pool_size: -1}\n", "redis.pool_size"},
		{"negative timeout", "redis: {host: h, read_timeout: -1s}\n", "redis.read_timeout: must not be negative"},
		{"wait embedded", "ledger: {wait_replicas: 1}\n", "ledger.wait_replicas: needs a Redis with replicas"},
		{"wait no timeout", "redis: {host: h}\nledger: {wait_replicas: 1, wait_timeout: 0s}\n", "ledger.wait_timeout: must be positive"},
		{"wait over read timeout", "redis: {host: h, read_timeout: 500ms}\nledger: {wait_replicas: 1, wait_timeout: 500ms}\n", "ledger.wait_timeout: must be shorter than redis.read_timeout (500ms)"},
		{"tls embedded", "redis: {tls: {enabled: true}}\n", "redis.tls: TLS needs a Redis address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadDocFiles(t, c.doc+goodMarket, map[string]string{"TOK": "x", "A": "a", "B": "b"}, map[string]string{"/b": "pw"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	_, err := loadDocFiles(t, "redis: {host: h, password_file: /missing}\n"+goodMarket, map[string]string{"TOK": "x"}, nil)
	if err == nil || !strings.Contains(err.Error(), `redis.password_file: cannot read "/missing"`) {
		t.Fatalf("missing password file: %v", err)
	}
}

func loadDocFiles(t *testing.T, doc string, env, extra map[string]string) (Config, error) {
	t.Helper()
	files := map[string][]byte{"bidder.yaml": []byte(doc)}
	for k, v := range extra {
		files[k] = []byte(v)
	}
	return Load(Options{
		Path:      "bidder.yaml",
		LookupEnv: envMap(env),
		ReadFile: func(p string) ([]byte, error) {
			if b, ok := files[p]; ok {
				return b, nil
			}
			return nil, &pathErr{p}
		},
		Adapters: adapters,
	})
}

type pathErr struct{ p string }

func (e *pathErr) Error() string { return "open " + e.p + ": no such file or directory" }
