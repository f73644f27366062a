package promx

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promx_test_total", Help: "h"}, []string{"l"})
}

func TestRegisterReusesTheRegisteredCollector(t *testing.T) {
	r := prometheus.NewRegistry()
	first := Register(r, newCounter())
	second := Register(r, newCounter())
	if second != first {
		t.Fatal("second registration did not return the first collector")
	}
	second.WithLabelValues("x").Inc()
	if got := testutil.ToFloat64(first.WithLabelValues("x")); got != 1 {
		t.Fatalf("first collector counted %v, want 1", got)
	}
}

func TestRegisterConflictKeepsTheLocalCollector(t *testing.T) {
	r := prometheus.NewRegistry()
	Register(r, newCounter())
	other := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promx_test_total", Help: "h"}, []string{"other"})
	if got := Register(r, other); got != other {
		t.Fatal("a conflicting registration must return the caller's collector")
	}
}
