package lock

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Defaults and bounds. Out-of-bounds option values are clamped (and logged at
// NewManager), so a bad value can never produce a lock that expires before
// its first renewal or one that outlives a crashed holder for days.
const (
	DefaultTTL       = 30 * time.Second
	MinTTL           = 100 * time.Millisecond
	MaxTTL           = 24 * time.Hour
	DefaultRetryMin  = 50 * time.Millisecond
	DefaultRetryMax  = time.Second
	DefaultKeyPrefix = "bid_lock"
)

// Option configures a Manager.
type Option func(*options)

type options struct {
	ttl          time.Duration
	retryMin     time.Duration
	retryMax     time.Duration
	keys         Keys
	logger       *zap.Logger
	registerer   prometheus.Registerer
	holderPrefix string
}

func defaultOptions() options {
	return options{
		ttl:      DefaultTTL,
		retryMin: DefaultRetryMin,
		retryMax: DefaultRetryMax,
		keys:     Keys{Prefix: DefaultKeyPrefix},
		logger:   zap.NewNop(),
	}
}

// WithTTL sets the lease length (default 30s, bounds MinTTL..MaxTTL). The
// watchdog renews at TTL/3, so a holder survives two missed renewals.
func WithTTL(ttl time.Duration) Option { return func(o *options) { o.ttl = ttl } }

// WithRetry sets Acquire's backoff: exponential from min to max, full jitter
// (default 50ms..1s).
func WithRetry(min, max time.Duration) Option {
	return func(o *options) { o.retryMin, o.retryMax = min, max }
}

// WithKeyPrefix sets the lock key prefix (default "bid_lock", the seed's).
func WithKeyPrefix(prefix string) Option { return func(o *options) { o.keys.Prefix = prefix } }

// WithHashTags keeps every key of a posting in one Redis Cluster slot. It
// changes the key layout, so all instances must agree on it.
func WithHashTags(on bool) Option { return func(o *options) { o.keys.HashTags = on } }

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the Prometheus metrics on r (default: none).
// Several Managers may share one registerer; they then share the series.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.registerer = r } }

// WithHolderPrefix replaces the "<hostname>:<pid>" part of holder names, for
// containers where every PID is 1 (use the pod name).
func WithHolderPrefix(p string) Option { return func(o *options) { o.holderPrefix = p } }

// normalize clamps option values and reports what it changed.
func (o *options) normalize() []string {
	var fixed []string
	clamp := func(name string, v *time.Duration, lo, hi, def time.Duration) {
		switch {
		case *v == 0:
			*v = def
		case *v < lo:
			fixed = append(fixed, name+" "+v.String()+" raised to "+lo.String())
			*v = lo
		case *v > hi:
			fixed = append(fixed, name+" "+v.String()+" lowered to "+hi.String())
			*v = hi
		}
	}
	clamp("ttl", &o.ttl, MinTTL, MaxTTL, DefaultTTL)
	clamp("retry min", &o.retryMin, time.Millisecond, time.Minute, DefaultRetryMin)
	clamp("retry max", &o.retryMax, o.retryMin, time.Minute, DefaultRetryMax)
	if o.keys.Prefix == "" {
		o.keys.Prefix = DefaultKeyPrefix
	}
	if o.logger == nil {
		o.logger = zap.NewNop()
	}
	return fixed
}
