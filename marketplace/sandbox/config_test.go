package sandbox

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func parseFlags(t *testing.T, args ...string) (ServerConfig, error) {
	t.Helper()
	var cfg ServerConfig
	fs := pflag.NewFlagSet("sandbox", pflag.ContinueOnError)
	fs.SetOutput(&strings.Builder{})
	cfg.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func TestFlagDefaults(t *testing.T) {
	cfg, err := parseFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultServerConfig()
	if cfg.Addr != d.Addr || strings.Join(cfg.Tokens, ",") != DefaultToken || cfg.Idempotency != IdempotencyOn ||
		cfg.Duplicates != DuplicatesReject || cfg.RetryAfter != time.Second || cfg.Seed != 1 || cfg.Latency != (Latency{}) {
		t.Fatalf("defaults %+v", cfg)
	}
}

func TestFlagsParse(t *testing.T) {
	cfg, err := parseFlags(t, "--listen", ":0", "--tokens", "a,b", "--idempotency", "off", "--duplicates", "accept",
		"--latency", "1ms..50ms", "--error-rate", "0.1", "--ambiguous-rate", "0.2", "--rate-limit-rate", "0.3",
		"--retry-after", "3s", "--close-after", "1m", "--postings", "1000", "--rate", "50", "--seed", "9")
	if err != nil {
		t.Fatal(err)
	}
	want := ServerConfig{Addr: ":0", Tokens: []string{"a", "b"}, Idempotency: IdempotencyOff, Duplicates: DuplicatesAccept,
		Latency: Latency{time.Millisecond, 50 * time.Millisecond}, ErrorRate: 0.1, AmbiguousRate: 0.2, RateLimitRate: 0.3,
		RetryAfter: 3 * time.Second, CloseAfter: time.Minute, Postings: 1000, Rate: 50, Seed: 9}
	if strings.Join(cfg.Tokens, ",") != "a,b" {
		t.Fatalf("tokens %v", cfg.Tokens)
	}
	cfg.Tokens, want.Tokens = nil, nil
	if cfg.Addr != want.Addr || cfg.Idempotency != want.Idempotency || cfg.Duplicates != want.Duplicates || cfg.Latency != want.Latency ||
		cfg.ErrorRate != want.ErrorRate || cfg.AmbiguousRate != want.AmbiguousRate || cfg.RateLimitRate != want.RateLimitRate ||
		cfg.RetryAfter != want.RetryAfter || cfg.CloseAfter != want.CloseAfter || cfg.Postings != want.Postings || cfg.Rate != want.Rate || cfg.Seed != want.Seed {
		t.Fatalf("parsed %+v\nwant   %+v", cfg, want)
	}
}

func TestFlagErrorsNameTheFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--idempotency", "maybe"}, "idempotency"},
		{[]string{"--duplicates", "sometimes"}, "duplicates"},
		{[]string{"--latency", "fast"}, "latency"},
		{[]string{"--latency", "50ms..1ms"}, "latency"},
		{[]string{"--latency", "-5ms"}, "latency"},
		{[]string{"--error-rate", "1.5"}, "--error-rate"},
		{[]string{"--ambiguous-rate", "-0.1"}, "--ambiguous-rate"},
		{[]string{"--rate-limit-rate", "NaN"}, "--rate-limit-rate"},
		{[]string{"--rate", "-1"}, "--rate"},
		{[]string{"--postings", "-1"}, "--postings"},
		{[]string{"--close-after", "-1s"}, "--close-after"},
		{[]string{"--retry-after", "-1s"}, "--retry-after"},
		{[]string{"--tokens", ""}, "--tokens"},
		{[]string{"--tokens", "a,,b"}, "--tokens"},
		{[]string{"--tokens", "has space"}, "--tokens"},
		{[]string{"--seed", "x"}, "seed"},
	} {
		_, err := parseFlags(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%v: error %v, want one naming %s", c.args, err, c.flag)
		}
	}
	// A rejected token is never echoed.
	if _, err := parseFlags(t, "--tokens", "secret with space"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("token error %v", err)
	}
}

func TestLatencyString(t *testing.T) {
	for in, want := range map[string]string{"0": "0", "": "0", "20ms": "20ms", "1ms..50ms": "1ms..50ms", " 5ms .. 5ms ": "5ms"} {
		l, err := ParseLatency(in)
		if err != nil || l.String() != want {
			t.Errorf("ParseLatency(%q) = %v, %v; want %s", in, l, err, want)
		}
	}
}

func TestNewServerRejectsBadConfig(t *testing.T) {
	if _, err := NewServer(ServerConfig{}); err == nil || !strings.Contains(err.Error(), "--tokens") {
		t.Fatalf("no tokens: %v", err)
	}
	if _, err := NewServer(ServerConfig{Tokens: []string{"t"}, ErrorRate: 2}); err == nil {
		t.Fatal("error rate 2 accepted")
	}
}
