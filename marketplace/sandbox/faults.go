package sandbox

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// faults rolls the configured faults from one seeded source, so a run with
// the same seed and the same request order injects the same faults.
type faults struct {
	mu  sync.Mutex
	rng *rand.Rand

	latency       Latency
	errorRate     float64
	ambiguousRate float64
	rateLimitRate float64

	// Counted for tests and logs: which way ambiguous answers went.
	ambiguous504   atomic.Int64
	ambiguousDrops atomic.Int64
}

func newFaults(cfg ServerConfig) *faults {
	return &faults{
		// A stream apart from posting generation, which uses (seed, seq).
		rng:           rand.New(rand.NewPCG(cfg.Seed, 0x5eed_fa17_5eed_fa17)),
		latency:       cfg.Latency,
		errorRate:     cfg.ErrorRate,
		ambiguousRate: cfg.AmbiguousRate,
		rateLimitRate: cfg.RateLimitRate,
	}
}

// roll returns true with probability p. Rates of 0 and 1 do not consume
// randomness, so turning one fault fully on or off does not reshuffle others.
func (f *faults) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	f.mu.Lock()
	v := f.rng.Float64()
	f.mu.Unlock()
	return v < p
}

func (f *faults) delay() time.Duration {
	l := f.latency
	if l.Max <= l.Min {
		return l.Min
	}
	f.mu.Lock()
	d := l.Min + time.Duration(f.rng.Int64N(int64(l.Max-l.Min)+1))
	f.mu.Unlock()
	return d
}

// sleep waits d or until the client goes away.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
