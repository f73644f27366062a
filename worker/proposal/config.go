package proposal

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/bidder/bidder/worker/rules"
)

// Writer names, the values of Config.Writer.
const (
	WriterTemplate = "template"
	WriterOpenAI   = "openai"
)

// What the model writer does when the model fails or the spend cap is
// reached, the values of Config.OnError. A rejected answer always falls back.
const (
	OnErrorFallback = "fallback" // send the template
	OnErrorWait     = "wait"     // ErrWait: retry later, not counted as a failure
)

// Values of Config.MaxTokensParam.
const (
	ParamMaxTokens           = "max_tokens"
	ParamMaxCompletionTokens = "max_completion_tokens"
)

// Defaults for zero values of Config.
const (
	DefaultMaxTokens = 600
	DefaultTimeout   = 30 * time.Second
	DefaultMaxLength = 5000 // characters (runes)
	DefaultWait      = time.Minute
	MaxTimeout       = 10 * time.Minute
	maxMaxTokens     = 100_000
	maxToneLength    = 200
)

// Config is one marketplace's proposal writer. It sits under the
// marketplace's `proposals:` key, which is why Validate names keys from
// "proposals.". The zero value is the template writer.
type Config struct {
	Writer string `yaml:"writer"` // template (default) | openai

	// BaseURL is the chat-completions API root: https://api.openai.com/v1,
	// a gateway, or a local server (http://127.0.0.1:11434/v1 for Ollama).
	BaseURL string `yaml:"base_url"`
	// The API key: from the env var api_key_env or the file api_key_file
	// (trimmed); neither for servers that take none.
	APIKeyEnv  string `yaml:"api_key_env"`
	APIKeyFile string `yaml:"api_key_file"`

	Model     string `yaml:"model"`
	MaxTokens int    `yaml:"max_tokens"` // 0 = DefaultMaxTokens
	// MaxTokensParam is the request field carrying MaxTokens: max_tokens
	// (default; local servers) or max_completion_tokens (newer hosted
	// models refuse max_tokens).
	MaxTokensParam string `yaml:"max_tokens_param"`
	// Temperature is sent only when set: some models refuse it.
	Temperature *float64       `yaml:"temperature"`
	Timeout     rules.Duration `yaml:"timeout"` // per model call; 0 = DefaultTimeout

	// MaxLength is the marketplace's proposal limit in characters; a longer
	// answer is rejected (0 = DefaultMaxLength).
	MaxLength int `yaml:"max_length"`
	// AllowURLs and AllowContacts let an answer contain URLs, or e-mail
	// addresses and phone numbers. Without them an answer may contain only
	// those that appear in profile.portfolio.
	AllowURLs     bool `yaml:"allow_urls"`
	AllowContacts bool `yaml:"allow_contacts"`

	OnError string `yaml:"on_error"` // fallback (default) | wait
	// Wait is how long on_error: wait waits when the server names no
	// Retry-After (0 = DefaultWait).
	Wait rules.Duration `yaml:"wait"`

	Spend   SpendConfig  `yaml:"spend"`
	Prompt  PromptConfig `yaml:"prompt"`
	Profile Profile      `yaml:"profile"`

	// APIKey is the resolved key (never printed, logged or sent anywhere but
	// the Authorization header).
	APIKey string `yaml:"-"`
}

// SpendConfig caps the tokens all instances together spend on this
// marketplace's proposals per UTC hour and UTC day (0 = unlimited).
type SpendConfig struct {
	TokensPerHour int64 `yaml:"tokens_per_hour"`
	TokensPerDay  int64 `yaml:"tokens_per_day"`
}

// PromptConfig holds the two templates of the prompt. They are kept apart
// because the posting is untrusted: Instructions (the system message) sees
// only trusted data, Posting (the user message, fenced as data) the posting.
type PromptConfig struct {
	// Instructions is a text/template over InstructionData: .Profile,
	// .Amount, .Currency, .MaxLength, .MarketplaceID. "" = the default.
	Instructions string `yaml:"instructions"`
	// Posting is a text/template over rules.ProposalData, as the rules'
	// proposal template: the posting's fields (.Title, .Description,
	// .Budget.Max, .Skills, .Client.Country, ...) and .Amount. "" = the
	// default.
	Posting string `yaml:"posting"`
}

// Profile is the freelancer the proposals are written for.
type Profile struct {
	Skills    []string `yaml:"skills"`
	Portfolio []string `yaml:"portfolio"` // one past project per line
	Tone      string   `yaml:"tone"`      // e.g. "friendly, concise"
}

// IsModel reports whether the config asks for the model writer.
func (c Config) IsModel() bool { return c.Writer == WriterOpenAI }

func (c Config) maxTokens() int         { return orDefault(c.MaxTokens, DefaultMaxTokens) }
func (c Config) timeout() time.Duration { return orDefault(time.Duration(c.Timeout), DefaultTimeout) }
func (c Config) maxLength() int         { return orDefault(c.MaxLength, DefaultMaxLength) }
func (c Config) wait() time.Duration    { return orDefault(time.Duration(c.Wait), DefaultWait) }

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Validate reports every problem in c, each as a *rules.FieldError naming
// its key from "proposals." (the config package reports them under the
// marketplace); the result is an errors.Join of them, nil when c is usable.
// They match rules.ErrInvalidConfig.
func (c Config) Validate() error {
	v := &validator{}
	c.validate(v)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) addf(key, format string, args ...any) {
	v.errs = append(v.errs, &rules.FieldError{Key: "proposals." + key, Problem: fmt.Sprintf(format, args...)})
}

func (c Config) validate(v *validator) {
	switch c.Writer {
	case "", WriterTemplate:
		return // nothing else is read
	case WriterOpenAI:
	default:
		v.addf("writer", "unknown writer %q: want %s or %s", c.Writer, WriterTemplate, WriterOpenAI)
		return
	}
	c.validateEndpoint(v)
	if strings.TrimSpace(c.Model) == "" {
		v.addf("model", "required with writer: %s", WriterOpenAI)
	}
	if c.MaxTokens < 0 || c.MaxTokens > maxMaxTokens {
		v.addf("max_tokens", "want 1-%d (0 = %d), got %d", maxMaxTokens, DefaultMaxTokens, c.MaxTokens)
	}
	switch c.MaxTokensParam {
	case "", ParamMaxTokens, ParamMaxCompletionTokens:
	default:
		v.addf("max_tokens_param", "want %s or %s, got %q", ParamMaxTokens, ParamMaxCompletionTokens, c.MaxTokensParam)
	}
	if t := c.Temperature; t != nil && (math.IsNaN(*t) || *t < 0 || *t > 2) {
		v.addf("temperature", "want 0-2, got %v", *t)
	}
	if c.Timeout < 0 || time.Duration(c.Timeout) > MaxTimeout {
		v.addf("timeout", "want 0-%s (0 = %s), got %s", MaxTimeout, DefaultTimeout, time.Duration(c.Timeout))
	}
	if c.MaxLength < 0 {
		v.addf("max_length", "must be >= 0 (0 = %d), got %d", DefaultMaxLength, c.MaxLength)
	}
	switch c.OnError {
	case "", OnErrorFallback, OnErrorWait:
	default:
		v.addf("on_error", "want %s or %s, got %q", OnErrorFallback, OnErrorWait, c.OnError)
	}
	if c.Wait < 0 {
		v.addf("wait", "must be >= 0 (0 = %s), got %s", DefaultWait, time.Duration(c.Wait))
	}
	c.validateSpend(v)
	if _, err := compilePrompt(c); err != nil {
		var fe *rules.FieldError
		if errors.As(err, &fe) {
			v.errs = append(v.errs, fe)
		} else {
			v.addf("prompt", "%v", err)
		}
	}
	for i, s := range c.Profile.Skills {
		if strings.TrimSpace(s) == "" {
			v.addf(fmt.Sprintf("profile.skills[%d]", i), "must not be empty")
		}
	}
	for i, s := range c.Profile.Portfolio {
		if strings.TrimSpace(s) == "" {
			v.addf(fmt.Sprintf("profile.portfolio[%d]", i), "must not be empty")
		}
	}
	if n := len([]rune(c.Profile.Tone)); n > maxToneLength {
		v.addf("profile.tone", "at most %d characters, got %d", maxToneLength, n)
	}
}

func (c Config) validateEndpoint(v *validator) {
	if c.APIKeyEnv != "" && c.APIKeyFile != "" {
		v.addf("api_key_file", "set api_key_env or api_key_file, not both")
	}
	if c.BaseURL == "" {
		v.addf("base_url", "required with writer: %s (e.g. https://api.openai.com/v1, http://127.0.0.1:11434/v1)", WriterOpenAI)
		return
	}
	// Never echo the URL: it is where a key would sit if someone put one in.
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.addf("base_url", "want an http:// or https:// URL")
		return
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		v.addf("base_url", "must not hold credentials, a query or a fragment; put the key in api_key_env or api_key_file")
		return
	}
	if u.Scheme == "http" && (c.APIKeyEnv != "" || c.APIKeyFile != "") && !isLoopback(u.Hostname()) {
		v.addf("base_url", "refusing to send the API key over plain http to %q; use https (plain http only to a loopback address)", u.Hostname())
	}
}

func (c Config) validateSpend(v *validator) {
	s := c.Spend
	if s.TokensPerHour < 0 {
		v.addf("spend.tokens_per_hour", "must be >= 0 (0 = unlimited), got %d", s.TokensPerHour)
	}
	if s.TokensPerDay < 0 {
		v.addf("spend.tokens_per_day", "must be >= 0 (0 = unlimited), got %d", s.TokensPerDay)
	}
	if s.TokensPerDay > 0 && s.TokensPerHour > s.TokensPerDay {
		v.addf("spend.tokens_per_hour", "must be <= tokens_per_day (%d), got %d", s.TokensPerDay, s.TokensPerHour)
	}
	// A call reserves at least max_tokens; a smaller cap could never pay one.
	mt := int64(c.maxTokens())
	if s.TokensPerHour > 0 && s.TokensPerHour < mt {
		v.addf("spend.tokens_per_hour", "must be >= max_tokens (%d), or no proposal can ever be generated; got %d", mt, s.TokensPerHour)
	}
	if s.TokensPerDay > 0 && s.TokensPerDay < mt {
		v.addf("spend.tokens_per_day", "must be >= max_tokens (%d), or no proposal can ever be generated; got %d", mt, s.TokensPerDay)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ResolveAPIKey sets c.APIKey from api_key_env or api_key_file, read with
// lookupEnv and readFile (os.LookupEnv, os.ReadFile in production). Errors
// are *rules.FieldError naming the key and the variable or file, never the
// value.
func (c *Config) ResolveAPIKey(lookupEnv func(string) (string, bool), readFile func(string) ([]byte, error)) error {
	if !c.IsModel() {
		return nil
	}
	switch {
	case c.APIKeyEnv != "":
		s, ok := lookupEnv(c.APIKeyEnv)
		if s = strings.TrimSpace(s); !ok || s == "" {
			return &rules.FieldError{Key: "proposals.api_key_env", Problem: fmt.Sprintf("environment variable %s is not set", c.APIKeyEnv)}
		}
		c.APIKey = s
	case c.APIKeyFile != "":
		b, err := readFile(c.APIKeyFile)
		if err != nil {
			return &rules.FieldError{Key: "proposals.api_key_file", Problem: fmt.Sprintf("cannot read %q: %v", c.APIKeyFile, pathless(err))}
		}
		if c.APIKey = strings.TrimSpace(string(b)); c.APIKey == "" {
			return &rules.FieldError{Key: "proposals.api_key_file", Problem: fmt.Sprintf("%q is empty", c.APIKeyFile)}
		}
	}
	return nil
}
