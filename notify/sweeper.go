package notify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/bidder/bidder/ledger"
)

// sweepBatch is how many outbox entries one read takes from one outbox,
// and pipeBatch how many outboxes one pipeline reads (16384 with hash tags).
const (
	sweepBatch = 100
	pipeBatch  = 512
)

// Sweeper moves outbox entries into send tasks, then pops them. Run one
// on every worker instance: a lease per marketplace lets one at a time
// sweep it, and a sweep that overlaps another (a lease that ran out) only
// meets task ID conflicts.
type Sweeper struct {
	rdb     redis.UniversalClient
	client  *asynq.Client
	led     *ledger.Ledger
	cfg     Config
	metrics *Metrics
	log     *zap.Logger
	lease   time.Duration

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// NewSweeper returns a sweeper of led's outboxes for cfg.Marketplaces.
func NewSweeper(rdb redis.UniversalClient, client *asynq.Client, led *ledger.Ledger, cfg Config, m *Metrics, log *zap.Logger) *Sweeper {
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Sweeper{rdb: rdb, client: client, led: led, cfg: cfg.withDefaults(), metrics: m, log: log, lease: DefaultLease}
}

// Start sweeps every SweepEvery until Shutdown.
func (s *Sweeper) Start() {
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.cfg.SweepEvery)
		defer t.Stop()
		last := ""
		for {
			err := s.Sweep(ctx)
			// One line per change of state: Redis down must not log every
			// two seconds.
			if msg := errText(err); msg != last && ctx.Err() == nil {
				if err != nil {
					s.log.Warn("notification sweep failed", zap.Error(err))
				} else {
					s.log.Info("notification sweep recovered")
				}
				last = msg
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Shutdown stops sweeping and waits for a running sweep to end (its
// entries are popped or left for the next sweep, never lost).
func (s *Sweeper) Shutdown() {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Sweep runs one pass over every marketplace's outboxes, repeated while
// some outbox had more than one read's worth.
func (s *Sweeper) Sweep(ctx context.Context) error {
	var errs []error
	for _, mp := range s.cfg.Marketplaces {
		for range 100 { // bounded: a writer faster than us must not keep us here
			more, err := s.sweepMarketplace(ctx, mp)
			if err != nil {
				errs = append(errs, fmt.Errorf("notify: sweep %s: %w", mp, err))
			}
			if err != nil || !more {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// sweepMarketplace sweeps mp's outboxes under its lease; more reports an
// outbox that had a full read.
func (s *Sweeper) sweepMarketplace(ctx context.Context, mp string) (more bool, err error) {
	leaseKey := s.cfg.KeyPrefix + "_sweep:" + mp
	holder := runToken()
	ok, err := s.rdb.SetNX(ctx, leaseKey, holder, s.lease).Result()
	if err != nil {
		return false, fmt.Errorf("lease: %w", err)
	}
	if !ok {
		return false, nil // another instance is sweeping it
	}
	defer func() {
		// Released so the next tick (here or elsewhere) need not wait
		// out the lease; a failure only delays that.
		_ = unlockScript.Run(context.WithoutCancel(ctx), s.rdb, []string{leaseKey}, holder).Err()
	}()
	lctx, cancel := context.WithTimeout(ctx, s.lease)
	defer cancel()
	keys := s.led.OutboxKeys(mp)
	for start := 0; start < len(keys); start += pipeBatch {
		batch := keys[start:min(start+pipeBatch, len(keys))]
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringSliceCmd, len(batch))
		for i, k := range batch {
			cmds[i] = pipe.LRange(lctx, k, 0, sweepBatch-1)
		}
		if _, err := pipe.Exec(lctx); err != nil && !errors.Is(err, redis.Nil) {
			return false, fmt.Errorf("read outboxes: %w", err)
		}
		for i, c := range cmds {
			entries := c.Val()
			if len(entries) == 0 {
				continue
			}
			if err := s.sweepKey(lctx, batch[i], entries); err != nil {
				return false, err
			}
			more = more || len(entries) == sweepBatch
		}
	}
	return more, nil
}

// sweepKey enqueues a send per entry per channel that wants it, then pops
// the entries whose tasks all exist. An enqueue failure stops there: the
// rest stays for the next sweep.
func (s *Sweeper) sweepKey(ctx context.Context, key string, entries []string) error {
	done := 0
	var enqErr error
scan:
	for _, raw := range entries {
		ev, err := ledger.ParseEvent([]byte(raw))
		if err != nil {
			s.metrics.swept.WithLabelValues("corrupt").Inc()
			s.log.Warn("dropping an unreadable outbox entry", zap.String("outbox", key), zap.Error(err))
			done++
			continue
		}
		wanted := false
		for _, r := range s.cfg.Routes {
			if !r.Wants(ev.Kind) {
				continue
			}
			wanted = true
			t, err := NewTask(r.Channel.Name(), []byte(raw), ev, s.cfg)
			if err == nil {
				_, err = s.client.EnqueueContext(ctx, t)
			}
			switch {
			case err == nil:
				s.metrics.swept.WithLabelValues("enqueued").Inc()
			case errors.Is(err, asynq.ErrTaskIDConflict):
				// An earlier sweep enqueued it and stopped before the pop.
				s.metrics.swept.WithLabelValues("duplicate").Inc()
			default:
				enqErr = fmt.Errorf("enqueue %s: %w", TaskID(r.Channel.Name(), ev.ID), err)
				break scan
			}
		}
		if !wanted {
			s.metrics.swept.WithLabelValues("filtered").Inc()
		}
		done++
	}
	if done > 0 {
		args := make([]any, done)
		for i := range done {
			args[i] = entries[i]
		}
		if err := popScript.Run(context.WithoutCancel(ctx), s.rdb, []string{key}, args...).Err(); err != nil {
			// Enqueued and left in the outbox: the next sweep meets task
			// ID conflicts and pops them then.
			return errors.Join(enqErr, fmt.Errorf("pop %s: %w", key, err))
		}
	}
	return enqErr
}
