package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/bidder/bidder/ledger"
)

// payload is a send task's: the channel's name and the outbox entry as
// the ledger wrote it.
type payload struct {
	Channel string          `json:"channel"`
	Event   json.RawMessage `json:"event"`
}

// Delivery key values ("attempt:<run>" while a run may be sending).
const (
	stateSent    = "sent"
	stateUnknown = "unknown" // a non-idempotent send that may have arrived: never sent again
)

// unknownChannelDelay: a task for a channel this process is not configured
// with waits for an instance that is (configs roll out one by one); it
// counts, so a channel removed everywhere ends in the archive.
const unknownChannelDelay = time.Minute

// Handler is the asynq handler of TypeSend.
type Handler struct {
	rdb     redis.UniversalClient
	cfg     Config
	routes  map[string]Route
	metrics *Metrics
	log     *zap.Logger
	// afterSend runs between a successful send and the "sent" mark; an
	// error ends the run there, as a crash would (tests).
	afterSend func(channel, eventID string) error
}

// HandlerOption configures a Handler.
type HandlerOption func(*Handler)

// WithMetrics counts into m (default: unregistered metrics).
func WithMetrics(m *Metrics) HandlerOption { return func(h *Handler) { h.metrics = m } }

// WithLogger logs to l.
func WithLogger(l *zap.Logger) HandlerOption { return func(h *Handler) { h.log = l } }

// WithAfterSendHook runs f after a send succeeded and before it is marked
// sent; an error from f ends the run as a crash there would. For tests of
// the crash window.
func WithAfterSendHook(f func(channel, eventID string) error) HandlerOption {
	return func(h *Handler) { h.afterSend = f }
}

// NewHandler returns the send handler for cfg's routes.
func NewHandler(rdb redis.UniversalClient, cfg Config, opts ...HandlerOption) *Handler {
	h := &Handler{rdb: rdb, cfg: cfg.withDefaults(), routes: map[string]Route{}, log: zap.NewNop()}
	for _, o := range opts {
		o(h)
	}
	if h.metrics == nil {
		h.metrics = NewMetrics(nil)
	}
	for _, r := range h.cfg.Routes {
		h.routes[r.Channel.Name()] = r
		h.metrics.zero(r.Channel.Name())
	}
	return h
}

// NewTask is the send task of one outbox entry to one channel, with the
// options that make it once-only (TaskID, Retention) and bounded (MaxRetry).
func NewTask(channel string, entry []byte, ev ledger.Event, cfg Config) (*asynq.Task, error) {
	cfg = cfg.withDefaults()
	b, err := json.Marshal(payload{Channel: channel, Event: entry})
	if err != nil {
		return nil, fmt.Errorf("notify: task for %s: %w", ev.ID, err)
	}
	return asynq.NewTask(TypeSend, b,
		asynq.TaskID(TaskID(channel, ev.ID)), asynq.Queue(Queue), asynq.MaxRetry(cfg.MaxRetry),
		asynq.Retention(cfg.Retention), asynq.Timeout(2*DefaultTimeout)), nil
}

// ProcessTask delivers one event to one channel, at most once for a
// channel that is not idempotent and at least once (deduplicated by the
// receiver) for one that is.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p payload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		h.metrics.failed.WithLabelValues("other", ReasonBadTask).Inc()
		return fmt.Errorf("notify: task payload: %v: %w", err, asynq.SkipRetry)
	}
	ev, err := ledger.ParseEvent(p.Event)
	if err != nil {
		h.metrics.failed.WithLabelValues("other", ReasonBadTask).Inc()
		return fmt.Errorf("notify: task event: %w: %w", err, asynq.SkipRetry)
	}
	r, ok := h.routes[p.Channel]
	if !ok {
		h.metrics.failed.WithLabelValues("other", ReasonBadTask).Inc()
		return &RetryError{After: unknownChannelDelay, Counted: true, Err: errors.New("notify: channel not configured in this process")}
	}
	name := r.Channel.Name()
	key := h.cfg.DeliveryKey(name, ev.ID)
	log := h.log.With(zap.String("channel", name), zap.String("event_id", ev.ID))

	switch st, err := h.rdb.Get(ctx, key).Result(); {
	case err != nil && !errors.Is(err, redis.Nil):
		h.metrics.failed.WithLabelValues(name, ReasonRedis).Inc()
		return fmt.Errorf("notify: read delivery of %s: %w", ev.ID, err)
	case st == stateSent || st == stateUnknown:
		h.metrics.duplicate.WithLabelValues(name).Inc()
		return nil
	}
	if wait, err := h.limit(ctx, r); err != nil {
		h.metrics.failed.WithLabelValues(name, ReasonRedis).Inc()
		return fmt.Errorf("notify: rate limit of %s: %w", name, err)
	} else if wait > 0 {
		h.metrics.rateLimited.WithLabelValues(name).Inc()
		return &RetryError{After: wait, Err: fmt.Errorf("notify: channel %s: rate limited", name)}
	}

	run := runToken()
	ttl := h.cfg.Retention.Milliseconds()
	idem := "0"
	if r.Channel.Idempotent() {
		idem = "1"
	}
	st, err := beginScript.Run(ctx, h.rdb, []string{key}, ttl, idem, run).Text()
	if err != nil {
		h.metrics.failed.WithLabelValues(name, ReasonRedis).Inc()
		return fmt.Errorf("notify: mark attempt of %s: %w", ev.ID, err)
	}
	switch st {
	case stateSent, stateUnknown:
		h.metrics.duplicate.WithLabelValues(name).Inc()
		return nil
	case "attempt":
		if !r.Channel.Idempotent() {
			// An earlier run may have sent and stopped before marking it:
			// sending again could post twice. At most once, counted.
			h.metrics.ambiguous.WithLabelValues(name).Inc()
			log.Warn("notification may or may not have been delivered; not sent again")
			return nil
		}
		// Idempotent: the receiver drops a second copy by its key.
	}

	sendErr := r.Channel.Send(ctx, Message{Event: ev, Text: Text(ev)})
	if sendErr == nil {
		if h.afterSend != nil {
			if err := h.afterSend(name, ev.ID); err != nil {
				return err
			}
		}
		if err := h.rdb.Set(ctx, key, stateSent, h.cfg.Retention).Err(); err != nil {
			// Delivered; a run of this task again would find the attempt
			// marker and treat it as the crash window it is.
			log.Warn("notification sent but not marked sent", zap.Error(err))
		}
		h.metrics.sent.WithLabelValues(name, eventLabel(ev.Kind)).Inc()
		log.Debug("notification sent")
		return nil
	}

	switch {
	case errors.Is(sendErr, ErrAmbiguous):
		if r.Channel.Idempotent() {
			// The marker stays: the retry sends again with the same key.
			h.metrics.failed.WithLabelValues(name, ReasonAmbiguous).Inc()
			return &RetryError{Counted: true, Err: sendErr}
		}
		if err := h.rdb.Set(ctx, key, stateUnknown, h.cfg.Retention).Err(); err != nil {
			log.Warn("could not record an ambiguous send", zap.Error(err))
		}
		h.metrics.ambiguous.WithLabelValues(name).Inc()
		log.Warn("notification may or may not have been delivered; not sent again", zap.Error(sendErr))
		return nil
	case errors.Is(sendErr, ErrPermanent):
		h.clear(ctx, key, run, log)
		h.metrics.failed.WithLabelValues(name, ReasonPermanent).Inc()
		log.Warn("notification refused; archived", zap.Error(sendErr))
		return fmt.Errorf("%w: %w", sendErr, asynq.SkipRetry)
	default:
		h.clear(ctx, key, run, log)
		h.metrics.failed.WithLabelValues(name, ReasonRetryable).Inc()
		var se *SendError
		after := time.Duration(0)
		if errors.As(sendErr, &se) {
			after = se.RetryAfter
		}
		return &RetryError{After: after, Counted: true, Err: sendErr}
	}
}

// clear removes this run's marker after a send that did not arrive. If it
// cannot, the retry finds the marker and treats the send as ambiguous: for
// a channel that is not idempotent a lost notification, never a double one.
func (h *Handler) clear(ctx context.Context, key, run string, log *zap.Logger) {
	if err := clearScript.Run(ctx, h.rdb, []string{key}, run).Err(); err != nil {
		log.Warn("could not clear the attempt marker", zap.Error(err))
	}
}

// limit takes one send from the route's shared budget: 0 to send now, or
// how long to wait.
func (h *Handler) limit(ctx context.Context, r Route) (time.Duration, error) {
	if r.RatePerSecond <= 0 {
		return 0, nil
	}
	n, window := int64(math.Floor(r.RatePerSecond)), int64(1000)
	if r.RatePerSecond < 1 {
		n, window = 1, int64(math.Ceil(1000/r.RatePerSecond))
	}
	key := h.cfg.KeyPrefix + "_rate:" + r.Channel.Name()
	ms, err := rateScript.Run(ctx, h.rdb, []string{key}, n, window).Int64()
	if err != nil {
		return 0, err
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func runToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
