package app

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/ops"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/worker"
)

// parkedCollector exports bidder_postings_parked{marketplace,reason}: how
// many postings wait parked in the ledger, cluster-wide. It reads the
// ledger's parked index (and each parked record, for its reason) at most
// once per interval, so scrapes from several Prometheus servers cost one
// read. Only the monitor role runs it: every instance exporting the same
// cluster-wide gauge would only duplicate it.
type parkedCollector struct {
	ledger       *ledger.Ledger
	marketplaces []string
	every        time.Duration
	log          *zap.Logger
	desc         *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	counts map[[2]string]float64
}

func newParkedCollector(led *ledger.Ledger, marketplaces []string, log *zap.Logger) *parkedCollector {
	return &parkedCollector{
		ledger: led, marketplaces: marketplaces, every: 30 * time.Second, log: log,
		desc: prometheus.NewDesc("bidder_postings_parked",
			"Postings parked in the ledger (their attempts ran out; each waits for `bidder ledger resume`), by marketplace and reason. Cluster-wide; exported by the monitor role.",
			[]string{"marketplace", "reason"}, nil),
	}
}

func (c *parkedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *parkedCollector) Collect(ch chan<- prometheus.Metric) {
	for k, v := range c.snapshot() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, k[0], k[1])
	}
}

func (c *parkedCollector) snapshot() map[[2]string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts != nil && time.Since(c.at) < c.every {
		return c.counts
	}
	counts := map[[2]string]float64{}
	for _, mp := range c.marketplaces {
		for _, r := range worker.ParkReasons() {
			counts[[2]string{mp, r}] = 0 // alerts see 0, not "no data"
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, mp := range c.marketplaces {
		ps, err := ops.ListParked(ctx, c.ledger, mp, 100000)
		if err != nil {
			c.log.Warn("cannot count parked postings", zap.String("marketplace", mp), zap.Error(err))
			if c.counts != nil {
				return c.counts // keep the last good figures
			}
			continue
		}
		for _, p := range ps {
			counts[[2]string{mp, p.Rule}]++
		}
	}
	c.counts, c.at = counts, time.Now()
	return counts
}
