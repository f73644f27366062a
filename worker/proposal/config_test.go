package proposal

import (
	"errors"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bidder/bidder/worker/rules"
)

func validModel() Config {
	return Config{Writer: WriterOpenAI, BaseURL: "https://api.example.invalid/v1", Model: "gpt-test", APIKeyEnv: "LLM_KEY"}
}

func TestValidateZeroIsTheTemplateWriter(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	if (Config{}).IsModel() || (Config{Writer: WriterTemplate}).IsModel() {
		t.Fatal("template config reads as the model writer")
	}
	if err := validModel().Validate(); err != nil {
		t.Fatalf("valid model config: %v", err)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	temp := 3.0
	for _, tc := range []struct {
		key string
		mut func(*Config)
	}{
		{"proposals.writer", func(c *Config) { c.Writer = "gpt" }},
		{"proposals.base_url", func(c *Config) { c.BaseURL = "" }},
		{"proposals.base_url", func(c *Config) { c.BaseURL = "ftp://x/v1" }},
		{"proposals.base_url", func(c *Config) { c.BaseURL = "https://user:sk-123@api.example/v1" }},
		{"proposals.base_url", func(c *Config) { c.BaseURL = "https://api.example/v1?key=sk-123" }},
		{"proposals.base_url", func(c *Config) { c.BaseURL = "http://llm.internal:8000/v1" }}, // key over plain http
		{"proposals.api_key_file", func(c *Config) { c.APIKeyFile = "/run/key" }},
		{"proposals.model", func(c *Config) { c.Model = " " }},
		{"proposals.max_tokens", func(c *Config) { c.MaxTokens = -1 }},
		{"proposals.max_tokens_param", func(c *Config) { c.MaxTokensParam = "tokens" }},
		{"proposals.temperature", func(c *Config) { c.Temperature = &temp }},
		{"proposals.timeout", func(c *Config) { c.Timeout = rules.Duration(time.Hour) }},
		{"proposals.max_length", func(c *Config) { c.MaxLength = -5 }},
		{"proposals.on_error", func(c *Config) { c.OnError = "retry" }},
		{"proposals.wait", func(c *Config) { c.Wait = rules.Duration(-time.Second) }},
		{"proposals.spend.tokens_per_hour", func(c *Config) { c.Spend.TokensPerHour = -1 }},
		{"proposals.spend.tokens_per_hour", func(c *Config) { c.Spend = SpendConfig{TokensPerHour: 5000, TokensPerDay: 4000} }},
		{"proposals.spend.tokens_per_day", func(c *Config) { c.Spend.TokensPerDay = 100 }}, // below max_tokens
		{"proposals.prompt.posting", func(c *Config) { c.Prompt.Posting = "{{.Nope}}" }},
		{"proposals.profile.skills[1]", func(c *Config) { c.Profile.Skills = []string{"go", " "} }},
		{"proposals.profile.portfolio[0]", func(c *Config) { c.Profile.Portfolio = []string{""} }},
		{"proposals.profile.tone", func(c *Config) { c.Profile.Tone = strings.Repeat("x", 201) }},
	} {
		c := validModel()
		tc.mut(&c)
		err := c.Validate()
		var fe *rules.FieldError
		if !errors.As(err, &fe) || fe.Key != tc.key || !errors.Is(err, rules.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v", tc.key, err)
			continue
		}
		if strings.Contains(err.Error(), "sk-123") {
			t.Errorf("%s: the error echoes a secret: %v", tc.key, err)
		}
	}
	// Plain http is fine to a loopback server, or without a key.
	for _, u := range []string{"http://127.0.0.1:11434/v1", "http://localhost:8080/v1"} {
		c := validModel()
		c.BaseURL = u
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	c := validModel()
	c.BaseURL, c.APIKeyEnv = "http://llm.internal:8000/v1", ""
	if err := c.Validate(); err != nil {
		t.Errorf("keyless plain http: %v", err)
	}
}

func TestResolveAPIKey(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "LLM_KEY" {
			return " sk-live-1 \n", true
		}
		return "", false
	}
	files := func(p string) ([]byte, error) {
		switch p {
		case "/run/key":
			return []byte("sk-file-2\n"), nil
		case "/run/empty":
			return []byte("\n"), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	c := validModel()
	if err := c.ResolveAPIKey(env, files); err != nil || c.APIKey != "sk-live-1" {
		t.Fatalf("env: %q %v", c.APIKey, err)
	}
	c = validModel()
	c.APIKeyEnv, c.APIKeyFile = "", "/run/key"
	if err := c.ResolveAPIKey(env, files); err != nil || c.APIKey != "sk-file-2" {
		t.Fatalf("file: %q %v", c.APIKey, err)
	}
	for _, tc := range []struct{ env, file, key, problem string }{
		{"UNSET", "", "proposals.api_key_env", "UNSET is not set"},
		{"", "/run/missing", "proposals.api_key_file", "file does not exist"},
		{"", "/run/empty", "proposals.api_key_file", "is empty"},
	} {
		c := validModel()
		c.APIKeyEnv, c.APIKeyFile = tc.env, tc.file
		err := c.ResolveAPIKey(env, files)
		var fe *rules.FieldError
		if !errors.As(err, &fe) || fe.Key != tc.key || !strings.Contains(fe.Problem, tc.problem) || strings.Count(fe.Problem, "/run/missing") > 1 {
			t.Errorf("%+v: %v", tc, err)
		}
	}
	// The template writer reads no key, even if one is named.
	tmpl := Config{APIKeyEnv: "UNSET"}
	if err := tmpl.ResolveAPIKey(env, files); err != nil || tmpl.APIKey != "" {
		t.Fatalf("template writer resolved a key: %v", err)
	}
}

// The examples in docs/proposals.md are what operators copy: each must
// decode strictly and validate.
func TestDocsExamplesDecodeAndValidate(t *testing.T) {
	md, err := os.ReadFile("../../docs/proposals.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(md, -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/proposals.md has %d yaml blocks, want the hosted and the local example", len(blocks))
	}
	models := 0
	for i, b := range blocks {
		var doc struct {
			Proposals Config `yaml:"proposals"`
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b[1])))
		dec.KnownFields(true)
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("block %d: decode: %v", i, err)
		}
		if err := doc.Proposals.Validate(); err != nil {
			t.Fatalf("block %d: validate: %v", i, err)
		}
		if doc.Proposals.IsModel() {
			models++
		}
	}
	if models < 2 {
		t.Fatalf("%d model examples, want at least 2", models)
	}
}
