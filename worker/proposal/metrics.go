package proposal

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidder/bidder/internal/promx"
)

// Results, the values of the result label of bidder_proposals_total. With
// source they say what happened: source template and result model_error is
// a fallback, source none and result model_error a wait.
const (
	ResultGenerated  = "generated"   // written now by the writer named in source
	ResultReused     = "reused"      // a stored proposal was returned, nothing written
	ResultModelError = "model_error" // the model failed (HTTP error, timeout, bad answer, Redis down for the cap)
	ResultRejected   = "rejected"    // the model answered, Check refused the text
	ResultSpendCap   = "spend_cap"   // the token budget of the hour or day is spent
)

// Metrics are the proposal writers' Prometheus metrics. A nil *Metrics
// counts nothing.
type Metrics struct {
	proposals *prometheus.CounterVec
	tokens    *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on r (nil: unregistered).
// Registering twice on one registry reuses the first set.
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_proposals_total",
			Help: "Proposals by marketplace, the source of the text (model, template, none = waiting) and result (generated, reused, model_error, rejected, spend_cap).",
		}, []string{"marketplace", "source", "result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_proposal_tokens_total",
			Help: "Tokens charged to the proposal spend cap by marketplace: the usage the model reported, or the reservation when it reported none.",
		}, []string{"marketplace"}),
	}
	if r != nil {
		m.proposals = promx.Register(r, m.proposals)
		m.tokens = promx.Register(r, m.tokens)
	}
	return m
}

func (m *Metrics) count(marketplaceID, source, result string) {
	if m != nil {
		m.proposals.WithLabelValues(marketplaceID, source, result).Inc()
	}
}

func (m *Metrics) addTokens(marketplaceID string, n int64) {
	if m != nil && n > 0 {
		m.tokens.WithLabelValues(marketplaceID).Add(float64(n))
	}
}
