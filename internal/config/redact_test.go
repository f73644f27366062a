package config

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestRedactURLByStructure: the userinfo is everything between "://" and
// the last "@", whatever it holds. A URL parser reads an unencoded '?', '#'
// or '/' in a password as the end of the host, so redacting after parsing
// printed such passwords whole.
func TestRedactURLByStructure(t *testing.T) {
	for _, c := range []struct{ in, want, secret string }{
		{"redis://:12?Secret@h:1/0", "redis://:xxxxx@h:1/0", "Secret"},
		{"redis://:12#Secret@h:1/0", "redis://:xxxxx@h:1/0", "Secret"},
		{"redis://user:a/Secret@h:1/0", "redis://user:xxxxx@h:1/0", "Secret"},
		{"redis://user:p@Secret@h:1/0", "redis://user:xxxxx@h:1/0", "Secret"},
		{"redis://user:s3cret-pw@db:6379/2", "redis://user:xxxxx@db:6379/2", "s3cret-pw"},
		{"rediss://:x@xhost:6380/0", "rediss://:xxxxx@xhost:6380/0", ""},
		// No ':' : a parser calls it a username, but it is where people
		// put a password by mistake.
		{"redis://Secret@h:1/0", "redis://xxxxx@h:1/0", "Secret"},
		// A "username" a parser would not take as one is not shown either.
		{"redis://a?Secret:pw@h:1/0", "redis://xxxxx:xxxxx@h:1/0", "Secret"},
		{"redis://h:1/0", "redis://h:1/0", ""},
		{"", "", ""},
		{"Secret@h:1", "xxxxx@h:1", "Secret"},
	} {
		got := RedactURL(c.in)
		if got != c.want || (c.secret != "" && strings.Contains(got, c.secret)) {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestRedisURLValidatedByGoRedis: a URL go-redis would read differently
// from what it says (here: host ":12", the password as a query option) is
// a config error naming the key, and the message never holds the password.
func TestRedisURLValidatedByGoRedis(t *testing.T) {
	for _, c := range []struct{ name, url, want string }{
		{"question mark in password", "redis://:12?Secret@h:1/0", "config: redis.url: "},
		{"hash in password", "redis://:12#Secret@h:1/0", "config: redis.url: "},
		{"slash in password", "redis://:a/Secret@h:1/0", "config: redis.url: "},
		{"bad db", "redis://:Secret@h:1/zz", `config: redis.url: redis://:xxxxx@h:1/zz: invalid database number: "zz"`},
		{"unknown option", "redis://:Secret@h:1/0?nope=1", "config: redis.url: redis://:xxxxx@h:1/0?nope=1: unexpected option: nope"},
		{"bad escape in password", "redis://:Secret%zz@h:1/0", "config: redis.url: "},
		{"unix socket", "unix://:Secret@/tmp/redis.sock", "config: redis.url: want a redis:// or rediss:// URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadDoc(t, goodMarket, map[string]string{"TOK": "t", EnvRedisURL: c.url}, Flags{})
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("got %v, want prefix %q", err, c.want)
			}
			if strings.Contains(err.Error(), "Secret") {
				t.Fatalf("password in the message: %v", err)
			}
			t.Log(err)
		})
	}
	cfg, err := loadDoc(t, goodMarket, map[string]string{"TOK": "t", EnvRedisURL: "redis://user:p%3Fw%23d@h:1/0"}, Flags{})
	if err != nil || cfg.Redis.URL != "redis://user:p%3Fw%23d@h:1/0" {
		t.Fatalf("a percent-encoded password is fine: %v", err)
	}
}

// TestRedactedByFieldNotByValue: a one-letter or common-word password must
// not mark every place its letters appear (where the marks fall would give
// it away), and fields that are not secret stay as they are.
func TestRedactedByFieldNotByValue(t *testing.T) {
	for _, pw := range []string{"x", "e", "redis", "sandbox"} {
		env := map[string]string{"TOK": pw, EnvRedisURL: "redis://:" + pw + "@redis-box:6379/0", "UIPW": pw}
		doc := "http: {monitoring: {basic_auth: {username: ops, password_env: UIPW}}}\n" + goodMarket
		cfg, err := loadDoc(t, doc, env, Flags{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := yaml.Marshal(cfg.Redacted())
		if err != nil {
			t.Fatal(err)
		}
		s := string(out)
		for _, want := range []string{
			"url: redis://:xxxxx@redis-box:6379/0", "adapter: sandbox", "base_url: http://127.0.0.1:9090",
			"token_env: TOK", "password_env: UIPW", "username: ops",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("password %q: %q missing from the redacted config:\n%s", pw, want, s)
			}
		}
	}
}
