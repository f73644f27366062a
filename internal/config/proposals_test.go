package config

import (
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const modelMarket = goodMarket + `    proposals:
      writer: openai
      base_url: https://llm.example.invalid/v1
      api_key_env: LLM_KEY
      model: gpt-test
      max_length: 1500
      spend: {tokens_per_hour: 20000, tokens_per_day: 100000}
      profile:
        skills: [go, python]
`

func TestProposalsConfigLoadsWithItsKey(t *testing.T) {
	cfg, err := loadDoc(t, modelMarket, map[string]string{"TOK": "x", "LLM_KEY": "sk-llm-s3cret"}, Flags{})
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Marketplaces[0].Proposals
	if !p.IsModel() || p.APIKey != "sk-llm-s3cret" || p.MaxLength != 1500 || p.Spend.TokensPerDay != 100000 {
		t.Fatalf("proposals decoded as %+v", p)
	}
	out, err := yaml.Marshal(cfg.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "sk-llm-s3cret") || !strings.Contains(string(out), "api_key_env: LLM_KEY") {
		t.Fatalf("config print:\n%s", out)
	}
	if cfg.Redacted().Marketplaces[0].Proposals.APIKey != RedactedSecret || cfg.Marketplaces[0].Proposals.APIKey != "sk-llm-s3cret" {
		t.Fatal("Redacted did not hide the key, or changed the original")
	}
	// The template writer is the default, and not printed when unset.
	cfg, err = loadDoc(t, goodMarket, map[string]string{"TOK": "x"}, Flags{})
	if err != nil || cfg.Marketplaces[0].Proposals.IsModel() {
		t.Fatalf("default: %+v %v", cfg.Marketplaces[0].Proposals, err)
	}
	if out, _ := yaml.Marshal(cfg.Redacted()); strings.Contains(string(out), "proposals:") {
		t.Fatalf("unset proposals printed:\n%s", out)
	}
}

func TestProposalsConfigErrorsNameTheKey(t *testing.T) {
	env := map[string]string{"TOK": "x", "LLM_KEY": "sk-llm-s3cret"}
	for _, c := range []struct {
		name, doc string
		env       map[string]string
		want      string
	}{
		{"unknown key", modelMarket + "      tempreature: 1\n", env, "config: marketplaces[0].proposals.tempreature: unknown key"},
		{"bad writer", strings.Replace(modelMarket, "writer: openai", "writer: gpt", 1), env, `config: marketplaces[0].proposals.writer: unknown writer "gpt"`},
		{"no model", strings.Replace(modelMarket, "model: gpt-test", "model: \"\"", 1), env, "config: marketplaces[0].proposals.model: required"},
		{"bad timeout", modelMarket + "      timeout: soon\n", env, `config: marketplaces[0].proposals.timeout: invalid duration "soon"`},
		{"key env unset", modelMarket, map[string]string{"TOK": "x"}, "config: marketplaces[0].proposals.api_key_env: environment variable LLM_KEY is not set"},
		{"key file missing", strings.Replace(modelMarket, "api_key_env: LLM_KEY", "api_key_file: /nope", 1), env, `config: marketplaces[0].proposals.api_key_file: cannot read "/nope"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadDoc(t, c.doc, c.env, Flags{})
			if err == nil || !strings.HasPrefix(err.Error(), c.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v\nwant prefix %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "sk-llm-s3cret") {
				t.Fatalf("message must be one line without secrets: %q", err)
			}
		})
	}
}
