package notify

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/bidder/bidder/ledger"
)

// EventRedisUnreachable: this process has not reached Redis for longer
// than the watch's bound. The one event the outbox cannot carry (it lives
// in Redis): OutageWatch sends it from the process's memory, straight to
// each channel, once per outage per process.
const EventRedisUnreachable = "redis_unreachable"

// OutageWatch pings Redis and, once it has been unreachable for longer
// than its bound, sends EventRedisUnreachable to every route that wants it,
// without Redis: no delivery key, no shared rate limit, no asynq. Each
// channel gets one message per outage (a send that did not arrive is tried
// again at the next check; an ambiguous one to a channel that cannot
// deduplicate counts as sent: at most once). Every instance watches for
// itself, so an outage of a shared Redis is reported by each instance
// that sees it, with its name in the event ID.
type OutageWatch struct {
	rdb      redis.UniversalClient
	routes   []Route
	after    time.Duration
	every    time.Duration
	instance string
	metrics  *Metrics
	log      *zap.Logger

	checks atomic.Int64 // for tests: checks run
	down   atomic.Bool

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// NewOutageWatch reports Redis unreachable for longer than after, as
// instance (a host and process name, for the message and the event ID).
func NewOutageWatch(rdb redis.UniversalClient, cfg Config, after time.Duration, instance string, m *Metrics, log *zap.Logger) *OutageWatch {
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = zap.NewNop()
	}
	var routes []Route
	for _, r := range cfg.Routes {
		if r.Wants(EventRedisUnreachable) {
			routes = append(routes, r)
		}
	}
	every := min(max(after/4, 100*time.Millisecond), 5*time.Second)
	return &OutageWatch{rdb: rdb, routes: routes, after: after, every: every, instance: instance, metrics: m, log: log}
}

// Down reports whether the last check found Redis unreachable.
func (w *OutageWatch) Down() bool { return w.down.Load() }

// Start checks every so often until Shutdown.
func (w *OutageWatch) Start() {
	if len(w.routes) == 0 {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	w.stop = stop
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(w.every)
		defer t.Stop()
		var since time.Time       // the outage's start; zero while up
		sent := map[string]bool{} // routes told of this outage
		for {
			since = w.check(ctx, since, sent)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Shutdown stops the watch.
func (w *OutageWatch) Shutdown() {
	if w.stop != nil {
		w.stop()
	}
	w.wg.Wait()
}

// check pings Redis once and sends what is due; it returns the outage's
// start (zero when Redis answered).
func (w *OutageWatch) check(ctx context.Context, since time.Time, sent map[string]bool) time.Time {
	defer w.checks.Add(1)
	pctx, cancel := context.WithTimeout(ctx, min(w.every, 2*time.Second))
	err := w.rdb.Ping(pctx).Err()
	cancel()
	if err == nil || ctx.Err() != nil {
		w.down.Store(false)
		clear(sent)
		return time.Time{}
	}
	w.down.Store(true)
	now := time.Now()
	if since.IsZero() {
		since = now
	}
	if now.Sub(since) < w.after {
		return since
	}
	ev := ledger.Event{
		ID:       EventRedisUnreachable + ":" + w.instance + ":" + strconv.FormatInt(since.UnixMilli(), 10),
		Kind:     EventRedisUnreachable,
		AtMs:     since.UnixMilli(),
		Instance: w.instance,
		Reason:   "no answer for " + now.Sub(since).Round(time.Second).String(),
	}
	msg := Message{Event: ev, Text: Text(ev)}
	for _, r := range w.routes {
		name := r.Channel.Name()
		if sent[name] {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.Channel.Send(sctx, msg)
		cancel()
		switch {
		case err == nil:
			sent[name] = true
			w.metrics.sent.WithLabelValues(name, EventRedisUnreachable).Inc()
		case errors.Is(err, ErrAmbiguous) && !r.Channel.Idempotent():
			sent[name] = true // at most once: it may have arrived
			w.metrics.ambiguous.WithLabelValues(name).Inc()
		case errors.Is(err, ErrPermanent):
			sent[name] = true // refused: asking again is refused again
			w.metrics.failed.WithLabelValues(name, ReasonPermanent).Inc()
			w.log.Warn("redis_unreachable notification refused", zap.String("channel", name), zap.Error(err))
		default:
			w.metrics.failed.WithLabelValues(name, ReasonRetryable).Inc()
		}
	}
	return since
}
