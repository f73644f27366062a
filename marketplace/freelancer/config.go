package freelancer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// AdapterName is the "adapter:" value in config that selects this adapter.
const AdapterName = "freelancer"

// Defaults.
const (
	// DefaultBaseURL is the production site. Freelancer's sandbox for trying
	// things out is SandboxBaseURL.
	DefaultBaseURL = "https://www.freelancer.com"
	SandboxBaseURL = "https://www.freelancer-sandbox.com"

	DefaultRequestTimeout     = 10 * time.Second
	DefaultPeriodDays         = 7
	DefaultMilestonePercent   = 100.0
	DefaultLookback           = 10 * time.Minute
	maxPeriodDays             = 365
	maxLookback               = 7 * 24 * time.Hour
	maxJobFilters             = 100
	maxQueryLen               = 500
	defaultBidLimitRetryAfter = time.Hour
)

// Option keys read from marketplace.Config.Options.
const (
	OptPeriodDays      = "period_days"          // bid delivery period in days (default 7)
	OptMilestonePct    = "milestone_percentage" // upfront milestone share, 0..100 (default 100)
	OptQuery           = "query"                // full-text search of active projects
	OptJobs            = "jobs"                 // comma-separated job (skill) IDs
	OptProjectTypes    = "project_types"        // comma-separated: fixed, hourly
	OptLookback        = "lookback"             // how far each sweep reaches back (default 10m)
	OptOwnerDetails    = "owner_details"        // ask for the owner's rating and country (default true)
	OptFullDescription = "full_description"     // ask for full descriptions (default true)
)

func knownOptions() []string {
	return []string{OptPeriodDays, OptMilestonePct, OptQuery, OptJobs, OptProjectTypes, OptLookback, OptOwnerDetails, OptFullDescription}
}

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("freelancer adapter: invalid config")

// settings is a validated Config.
type settings struct {
	id              string
	account         string
	token           string
	base            *url.URL
	timeout         time.Duration
	periodDays      int
	milestonePct    float64
	query           string
	jobs            []int64
	projectTypes    []string
	lookback        time.Duration
	ownerDetails    bool
	fullDescription bool
}

func parseConfig(cfg marketplace.Config) (settings, error) {
	bad := func(format string, args ...any) (settings, error) {
		return settings{}, fmt.Errorf("%w: marketplace %q: %s", ErrConfig, cfg.ID, fmt.Sprintf(format, args...))
	}
	if cfg.ID == "" {
		return settings{}, fmt.Errorf("%w: empty marketplace ID", ErrConfig)
	}
	raw := cfg.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := url.Parse(raw)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		// The URL could carry credentials, so it is not echoed back.
		return bad("base URL must be http(s)://host[:port][/path]")
	}
	if base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return bad("base URL must not carry user info, query or fragment")
	}
	if cfg.Token == "" {
		return bad("empty token")
	}
	for i := 0; i < len(cfg.Token); i++ {
		// A header value with a control byte or space is either refused by
		// net/http or a sign the token file has junk in it.
		if cfg.Token[i] <= ' ' || cfg.Token[i] > '~' {
			return bad("token contains whitespace or non-printable bytes")
		}
	}
	if cfg.RequestTimeout < 0 {
		return bad("negative request timeout")
	}
	s := settings{
		id:              cfg.ID,
		account:         cfg.Account,
		token:           cfg.Token,
		base:            base,
		timeout:         cfg.RequestTimeout,
		periodDays:      DefaultPeriodDays,
		milestonePct:    DefaultMilestonePercent,
		lookback:        DefaultLookback,
		ownerDetails:    true,
		fullDescription: true,
	}
	if s.timeout == 0 {
		s.timeout = DefaultRequestTimeout
	}
	if s.account == "" {
		s.account = AccountFromToken(cfg.Token)
	}
	for k := range cfg.Options {
		if !slices.Contains(knownOptions(), k) {
			return bad("unknown option %q (known: %s; the request rate is scan.requests_per_second)", k, strings.Join(knownOptions(), ", "))
		}
	}
	o := cfg.Options
	if v, ok := o[OptPeriodDays]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > maxPeriodDays {
			return bad("option %s: want whole days in 1..%d, got %q", OptPeriodDays, maxPeriodDays, v)
		}
		s.periodDays = n
	}
	if v, ok := o[OptMilestonePct]; ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
			return bad("option %s: want a number in 0..100, got %q", OptMilestonePct, v)
		}
		s.milestonePct = f
	}
	if v, ok := o[OptQuery]; ok {
		s.query = strings.TrimSpace(v)
		if len(s.query) > maxQueryLen {
			return bad("option %s: longer than %d bytes", OptQuery, maxQueryLen)
		}
	}
	if v, ok := o[OptJobs]; ok && strings.TrimSpace(v) != "" {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || n <= 0 {
				return bad("option %s: want comma-separated positive job IDs, got %q", OptJobs, v)
			}
			if !slices.Contains(s.jobs, n) {
				s.jobs = append(s.jobs, n)
			}
		}
		if len(s.jobs) > maxJobFilters {
			return bad("option %s: more than %d job IDs", OptJobs, maxJobFilters)
		}
	}
	if v, ok := o[OptProjectTypes]; ok && strings.TrimSpace(v) != "" {
		for _, f := range strings.Split(v, ",") {
			t := strings.ToLower(strings.TrimSpace(f))
			if t != "fixed" && t != "hourly" {
				return bad("option %s: want fixed and/or hourly, got %q", OptProjectTypes, v)
			}
			if !slices.Contains(s.projectTypes, t) {
				s.projectTypes = append(s.projectTypes, t)
			}
		}
	}
	if v, ok := o[OptLookback]; ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 || d > maxLookback {
			return bad("option %s: want a duration in 0..%s, got %q", OptLookback, maxLookback, v)
		}
		s.lookback = d
	}
	for key, dst := range map[string]*bool{OptOwnerDetails: &s.ownerDetails, OptFullDescription: &s.fullDescription} {
		if v, ok := o[key]; ok {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return bad("option %s: want true or false, got %q", key, v)
			}
			*dst = b
		}
	}
	return s, nil
}

// AccountFromToken derives a stable, non-secret account name from the token
// (a truncated SHA-256, which does not reveal the token). Account() feeds the
// idempotency key and must never need a network call that can fail, so the
// account's Freelancer user ID (known only after GET /self) cannot be used.
// A rotated token changes this name; set Config.Account to pin it.
func AccountFromToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "fl-" + hex.EncodeToString(sum[:])[:12]
}
