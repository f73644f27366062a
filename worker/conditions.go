package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Conditions that make tasks wait instead of fail: they are about the
// world, not the posting, and burning a posting's retries on them would
// park every posting of an outage.
const (
	CondReplicasShort   = "replicas_short"           // ledger.wait_replicas not met: no bid may go out
	CondRedisDown       = "redis_unreachable"        // scripts cannot reach Redis
	CondMarketplaceDown = "marketplace_unavailable"  // several requests in a row failed transiently
	CondUnauthorized    = "marketplace_unauthorized" // the marketplace refuses the account's token
)

// downAfter is how many transient marketplace failures in a row mark the
// marketplace unavailable; one stray 503 stays a counted failure.
const downAfter = 3

// conditionTTL is how long a condition holds without being set again: a
// worker that stops seeing its cause (no more tasks) does not report it
// for ever.
const conditionTTL = 2 * time.Minute

// Condition is one active wait condition.
type Condition struct {
	Kind        string
	Marketplace string // "" for the whole process
	Detail      string
	Since       time.Time
}

func (c Condition) String() string {
	if c.Marketplace == "" {
		return c.Kind + ": " + c.Detail
	}
	return c.Kind + " (" + c.Marketplace + "): " + c.Detail
}

type condKey struct{ kind, marketplace string }

type condState struct {
	Condition
	seen time.Time
}

// Conditions tracks a process's wait conditions, for the handler's retry
// policy, /readyz, the status page and bidder_worker_paused. Safe for
// concurrent use.
type Conditions struct {
	mu       sync.Mutex
	active   map[condKey]condState
	failures map[string]int // transient marketplace failures in a row
	known    []string       // marketplaces whose series start at 0
	now      func() time.Time
	desc     *prometheus.Desc
}

// NewConditions returns an empty set, exported as bidder_worker_paused on r
// (nil: not exported).
func NewConditions(r prometheus.Registerer) *Conditions {
	c := &Conditions{
		active: map[condKey]condState{}, failures: map[string]int{}, now: time.Now,
		desc: prometheus.NewDesc("bidder_worker_paused",
			"1 while this process's tasks wait on a condition that is not their own failure, by marketplace (\"\" for all) and reason (replicas_short, redis_unreachable, marketplace_unavailable, marketplace_unauthorized).",
			[]string{"marketplace", "reason"}, nil),
	}
	if r != nil {
		_ = r.Register(c) // a second registration on one registry keeps the first
	}
	return c
}

// Track makes bidder_worker_paused report 0 for marketplaceIDs while they
// wait on nothing, so alerts see 0 rather than no data.
func (c *Conditions) Track(marketplaceIDs ...string) {
	c.mu.Lock()
	c.known = append(c.known, marketplaceIDs...)
	c.mu.Unlock()
}

// Set starts (or refreshes) a condition.
func (c *Conditions) Set(kind, marketplaceID, detail string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := condKey{kind, marketplaceID}
	now := c.now()
	st, ok := c.active[k]
	if !ok || now.Sub(st.seen) > conditionTTL {
		st.Since = now
	}
	st.Kind, st.Marketplace, st.Detail, st.seen = kind, marketplaceID, detail, now
	c.active[k] = st
}

// Clear ends a condition.
func (c *Conditions) Clear(kind, marketplaceID string) {
	c.mu.Lock()
	delete(c.active, condKey{kind, marketplaceID})
	c.mu.Unlock()
}

// Active lists the conditions in force, sorted.
func (c *Conditions) Active() []Condition {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var out []Condition
	for k, st := range c.active {
		if now.Sub(st.seen) > conditionTTL {
			delete(c.active, k)
			continue
		}
		out = append(out, st.Condition)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Marketplace < out[j].Marketplace
	})
	return out
}

// Blocking returns an error naming the conditions that stop all of the
// process's bidding (no bid can go anywhere), for /readyz; nil otherwise.
// A marketplace's own conditions block only when every marketplace in
// marketplaceIDs has one.
func (c *Conditions) Blocking(marketplaceIDs []string) error {
	var all, global []string
	paused := map[string]bool{}
	for _, cd := range c.Active() {
		all = append(all, cd.String())
		if cd.Marketplace == "" {
			global = append(global, cd.String())
		} else {
			paused[cd.Marketplace] = true
		}
	}
	if len(global) > 0 {
		return errors.New(strings.Join(global, "; "))
	}
	if len(marketplaceIDs) == 0 {
		return nil
	}
	for _, id := range marketplaceIDs {
		if !paused[id] {
			return nil
		}
	}
	return errors.New(strings.Join(all, "; "))
}

// marketplaceOK records a request the marketplace answered.
func (c *Conditions) marketplaceOK(marketplaceID string) {
	c.mu.Lock()
	c.failures[marketplaceID] = 0
	delete(c.active, condKey{CondMarketplaceDown, marketplaceID})
	delete(c.active, condKey{CondUnauthorized, marketplaceID})
	c.mu.Unlock()
}

// marketplaceFailed records a transient failure and reports whether the
// marketplace now counts as unavailable.
func (c *Conditions) marketplaceFailed(marketplaceID string, err error) bool {
	c.mu.Lock()
	c.failures[marketplaceID]++
	down := c.failures[marketplaceID] >= downAfter
	c.mu.Unlock()
	if down {
		c.Set(CondMarketplaceDown, marketplaceID, fmt.Sprintf("%d requests in a row failed; last: %v", downAfter, err))
	}
	return down
}

// Describe implements prometheus.Collector.
func (c *Conditions) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *Conditions) Collect(ch chan<- prometheus.Metric) {
	v := map[condKey]float64{{CondReplicasShort, ""}: 0, {CondRedisDown, ""}: 0}
	c.mu.Lock()
	for _, mp := range c.known {
		v[condKey{CondMarketplaceDown, mp}], v[condKey{CondUnauthorized, mp}] = 0, 0
	}
	c.mu.Unlock()
	for _, cd := range c.Active() {
		v[condKey{cd.Kind, cd.Marketplace}] = 1
	}
	for k, x := range v {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, x, k.marketplace, k.kind)
	}
}

// redisUnreachable reports whether err means Redis could not be reached or
// did not answer (the command may or may not have run), as opposed to an
// answer that refused it.
func redisUnreachable(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, context.DeadlineExceeded) && !isRedisReply(err)
}

// isRedisReply reports whether err is an error reply from Redis.
func isRedisReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
