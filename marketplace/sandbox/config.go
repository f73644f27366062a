package sandbox

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// IdempotencyMode says whether the server honours Idempotency-Key.
type IdempotencyMode string

const (
	IdempotencyOn  IdempotencyMode = "on"
	IdempotencyOff IdempotencyMode = "off"
)

// DuplicatesMode says what the server does with a second bid by one account
// on one posting.
type DuplicatesMode string

const (
	DuplicatesReject DuplicatesMode = "reject"
	DuplicatesAccept DuplicatesMode = "accept"
)

// Defaults of the flags; DefaultServerConfig and AddFlags share them so the
// help text and a config built in code never disagree.
const (
	DefaultAddr       = "127.0.0.1:9090"
	DefaultToken      = "sandbox-token"
	DefaultRetryAfter = time.Second
	DefaultSeed       = 1
	DefaultAwardRate  = 0.2
)

// ServerConfig is one sandbox run: who may call it, its modes and its faults.
type ServerConfig struct {
	Addr   string   // listen address (used by the command, not by Server itself)
	Tokens []string // accepted bearer tokens; each one is an account

	Idempotency IdempotencyMode // "" means on
	Duplicates  DuplicatesMode  // "" means reject

	Latency       Latency       // added to every answer
	ErrorRate     float64       // 503 before doing anything
	AmbiguousRate float64       // bid stored, then 504 or a dropped connection
	RateLimitRate float64       // 429 + Retry-After
	RetryAfter    time.Duration // sent with 429; 0 means DefaultRetryAfter
	CloseAfter    time.Duration // a posting closes this long after publication; 0 = never

	// Outcomes (an additive extension of v1, see outcomes.go): each bid is
	// decided this long after it was created, awarded with probability
	// AwardRate by a rule of the seed and the bid (Decide). 0 = never:
	// bids stay pending.
	DecideAfter time.Duration
	AwardRate   float64

	Postings int     // published by NewServer
	Rate     float64 // postings per second published by Generate
	Seed     uint64  // postings and fault rolls repeat for a given seed

	// Now is the server's clock; nil means time.Now. Tests set it to close
	// postings without waiting.
	Now func() time.Time
	// Logger is optional; nil means no logging.
	Logger *zap.Logger
}

// DefaultServerConfig is the configuration the flags default to.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Addr:        DefaultAddr,
		Tokens:      []string{DefaultToken},
		Idempotency: IdempotencyOn,
		Duplicates:  DuplicatesReject,
		RetryAfter:  DefaultRetryAfter,
		Seed:        DefaultSeed,
		AwardRate:   DefaultAwardRate,
	}
}

// AddFlags registers the run's flags on fs and resets the flag-backed fields
// to their defaults (the values fs reports as defaults in --help).
func (c *ServerConfig) AddFlags(fs *pflag.FlagSet) {
	d := DefaultServerConfig()
	c.Idempotency = d.Idempotency
	c.Duplicates = d.Duplicates
	c.Latency = d.Latency

	fs.StringVar(&c.Addr, "listen", d.Addr, "address to listen on (host:port; port 0 picks a free one)")
	fs.StringSliceVar(&c.Tokens, "tokens", d.Tokens, "accepted bearer tokens, comma-separated; each token is one bidder account")
	fs.Var(&c.Idempotency, "idempotency", "honour Idempotency-Key: on|off")
	fs.Var(&c.Duplicates, "duplicates", "a second bid by one account on one posting: reject (409) | accept (create and count it)")
	fs.Var(&c.Latency, "latency", `added to every answer: "0", a duration ("20ms") or a range ("1ms..50ms")`)
	fs.Float64Var(&c.ErrorRate, "error-rate", 0, "fraction of requests answered 503 before doing anything, in [0,1]")
	fs.Float64Var(&c.AmbiguousRate, "ambiguous-rate", 0, "fraction of created bids answered 504 or with a dropped connection, in [0,1]")
	fs.Float64Var(&c.RateLimitRate, "rate-limit-rate", 0, "fraction of requests answered 429, in [0,1]")
	fs.DurationVar(&c.RetryAfter, "retry-after", d.RetryAfter, "Retry-After sent with 429 (rounded up to whole seconds)")
	fs.DurationVar(&c.CloseAfter, "close-after", 0, "a posting closes this long after publication (0 = never)")
	fs.DurationVar(&c.DecideAfter, "decide-after", 0, "each bid is awarded or rejected this long after it was placed (0 = never: bids stay pending)")
	fs.Float64Var(&c.AwardRate, "award-rate", d.AwardRate, "fraction of decided bids that are awarded, in [0,1]; which ones follows from --seed and the bid")
	fs.IntVar(&c.Postings, "postings", 0, "postings published at start")
	fs.Float64Var(&c.Rate, "rate", 0, "postings published per second while running (0 = none)")
	fs.Uint64Var(&c.Seed, "seed", d.Seed, "seed of posting generation and fault rolls; the same seed repeats a run")
}

// Validate reports the first invalid field, naming its flag.
func (c ServerConfig) Validate() error {
	if len(c.Tokens) == 0 {
		return errors.New("--tokens: at least one token is required")
	}
	for i, t := range c.Tokens {
		// The token itself is a secret, so errors name its position only.
		if t == "" {
			return fmt.Errorf("--tokens: token #%d is empty", i+1)
		}
		for j := 0; j < len(t); j++ {
			if t[j] <= ' ' || t[j] > '~' {
				return fmt.Errorf("--tokens: token #%d contains a space or non-printable byte", i+1)
			}
		}
	}
	switch c.Idempotency {
	case "", IdempotencyOn, IdempotencyOff:
	default:
		return fmt.Errorf("--idempotency: want on or off, got %q", string(c.Idempotency))
	}
	switch c.Duplicates {
	case "", DuplicatesReject, DuplicatesAccept:
	default:
		return fmt.Errorf("--duplicates: want reject or accept, got %q", string(c.Duplicates))
	}
	if err := c.Latency.validate(); err != nil {
		return fmt.Errorf("--latency: %w", err)
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{{"--error-rate", c.ErrorRate}, {"--ambiguous-rate", c.AmbiguousRate}, {"--rate-limit-rate", c.RateLimitRate}, {"--award-rate", c.AwardRate}} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			return fmt.Errorf("%s: must be in [0,1], got %v", r.flag, r.v)
		}
	}
	if c.RetryAfter < 0 {
		return fmt.Errorf("--retry-after: must not be negative, got %s", c.RetryAfter)
	}
	if c.CloseAfter < 0 {
		return fmt.Errorf("--close-after: must not be negative, got %s", c.CloseAfter)
	}
	if c.DecideAfter < 0 {
		return fmt.Errorf("--decide-after: must not be negative, got %s", c.DecideAfter)
	}
	if c.Postings < 0 {
		return fmt.Errorf("--postings: must not be negative, got %d", c.Postings)
	}
	if math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0 {
		return fmt.Errorf("--rate: must be a non-negative number, got %v", c.Rate)
	}
	return nil
}

// withDefaults fills the fields whose zero value means "default", so a
// ServerConfig literal in a test only names what it cares about.
func (c ServerConfig) withDefaults() ServerConfig {
	if c.Idempotency == "" {
		c.Idempotency = IdempotencyOn
	}
	if c.Duplicates == "" {
		c.Duplicates = DuplicatesReject
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// MarshalLogObject lets a run be logged as zap.Object("config", cfg). It
// names accounts, never tokens, so logging a config cannot leak a secret.
func (c ServerConfig) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("idempotency", string(c.Idempotency))
	enc.AddString("duplicates", string(c.Duplicates))
	enc.AddString("latency", c.Latency.String())
	enc.AddFloat64("error_rate", c.ErrorRate)
	enc.AddFloat64("ambiguous_rate", c.AmbiguousRate)
	enc.AddFloat64("rate_limit_rate", c.RateLimitRate)
	enc.AddDuration("retry_after", c.RetryAfter)
	enc.AddDuration("close_after", c.CloseAfter)
	enc.AddDuration("decide_after", c.DecideAfter)
	enc.AddFloat64("award_rate", c.AwardRate)
	enc.AddInt("postings", c.Postings)
	enc.AddFloat64("rate", c.Rate)
	enc.AddUint64("seed", c.Seed)
	return enc.AddArray("accounts", zapcore.ArrayMarshalerFunc(func(arr zapcore.ArrayEncoder) error {
		for _, t := range c.Tokens {
			arr.AppendString(AccountFromToken(t))
		}
		return nil
	}))
}

// String, Set and Type make the modes pflag values.

func (m IdempotencyMode) String() string { return string(m) }
func (m *IdempotencyMode) Type() string  { return "on|off" }
func (m *IdempotencyMode) Set(s string) error {
	switch v := IdempotencyMode(strings.ToLower(strings.TrimSpace(s))); v {
	case IdempotencyOn, IdempotencyOff:
		*m = v
		return nil
	}
	return fmt.Errorf("want on or off, got %q", s)
}

func (m DuplicatesMode) String() string { return string(m) }
func (m *DuplicatesMode) Type() string  { return "reject|accept" }
func (m *DuplicatesMode) Set(s string) error {
	switch v := DuplicatesMode(strings.ToLower(strings.TrimSpace(s))); v {
	case DuplicatesReject, DuplicatesAccept:
		*m = v
		return nil
	}
	return fmt.Errorf("want reject or accept, got %q", s)
}

// Latency is a fixed delay (Min == Max) or a uniform range.
type Latency struct {
	Min, Max time.Duration
}

// ParseLatency accepts "0", a duration ("20ms") or a range ("1ms..50ms").
func ParseLatency(s string) (Latency, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return Latency{}, nil
	}
	lo, hi, isRange := strings.Cut(s, "..")
	minD, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil {
		return Latency{}, fmt.Errorf("bad duration %q: %w", lo, err)
	}
	l := Latency{Min: minD, Max: minD}
	if isRange {
		if l.Max, err = time.ParseDuration(strings.TrimSpace(hi)); err != nil {
			return Latency{}, fmt.Errorf("bad duration %q: %w", hi, err)
		}
	}
	if err := l.validate(); err != nil {
		return Latency{}, err
	}
	return l, nil
}

func (l Latency) validate() error {
	if l.Min < 0 || l.Max < 0 {
		return fmt.Errorf("must not be negative, got %s", l)
	}
	if l.Min > l.Max {
		return fmt.Errorf("range minimum above maximum in %s", l)
	}
	return nil
}

func (l Latency) String() string {
	switch {
	case l.Min == 0 && l.Max == 0:
		return "0"
	case l.Min == l.Max:
		return l.Min.String()
	}
	return l.Min.String() + ".." + l.Max.String()
}

func (l *Latency) Set(s string) error {
	v, err := ParseLatency(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

func (l *Latency) Type() string { return "latency" }
