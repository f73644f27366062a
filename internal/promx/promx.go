// Package promx holds the Prometheus helper the lock, worker and scanner
// packages share.
package promx

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register adds c to r and returns it, or returns the collector already
// registered under the same description. Several lock Managers, worker
// handlers and scanners in one process share one registry, and each builds
// its own metrics: the second and later ones must count into the series the
// first one registered, not fail or count into collectors nobody scrapes.
//
// Any other registration error (the same name with other labels or help,
// say) is a wiring bug; c is returned unregistered, so the caller keeps
// counting locally rather than fail.
func Register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
