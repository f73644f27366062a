package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/bidder/bidder/lock"
)

// ServerConfig is the worker process's asynq configuration.
type ServerConfig struct {
	Concurrency     int            // parallel tasks (default 20)
	Queues          map[string]int // queue weights (default bids:6, scans:3)
	ShutdownTimeout time.Duration  // how long running bids may finish on shutdown (default 30s)
	// PollInterval is how often idle workers and the scheduled/retry
	// forwarder look for work (asynq's TaskCheckInterval and
	// DelayedTaskCheckInterval; default 1s).
	PollInterval time.Duration
	Logger       *zap.Logger
}

// Server runs the task handlers on asynq and releases every lock it holds
// when it stops.
type Server struct {
	srv   *asynq.Server
	locks *lock.Manager
	log   *zap.Logger
}

// NewServer builds the asynq server on rdb. locks is the Manager the bid
// handler uses; its locks are released on Shutdown.
func NewServer(rdb redis.UniversalClient, cfg ServerConfig, locks *lock.Manager) *Server {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 20
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = map[string]int{QueueBids: 6, QueueScans: 3}
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	log := cfg.Logger.Named("worker")
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   cfg.Queues,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		RetryDelayFunc:           RetryDelay,
		IsFailure:                IsFailure,
		TaskCheckInterval:        cfg.PollInterval,
		DelayedTaskCheckInterval: cfg.PollInterval,
		Logger:                   log.Named("asynq").WithOptions(zap.AddCallerSkip(1)).Sugar(),
		LogLevel:                 asynq.WarnLevel,
	})
	return &Server{srv: srv, locks: locks, log: log}
}

// Start begins processing with handler (usually a *asynq.ServeMux).
func (s *Server) Start(handler asynq.Handler) error {
	if err := s.srv.Start(handler); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	return nil
}

// Ping checks the server's Redis connection.
func (s *Server) Ping() error { return s.srv.Ping() }

// Shutdown stops taking tasks, lets running ones finish within the shutdown
// timeout (asynq puts unfinished ones back in the queue), then releases any
// lock still held so other instances need not wait for TTLs.
func (s *Server) Shutdown(ctx context.Context) {
	s.srv.Shutdown()
	if s.locks == nil {
		return
	}
	n, err := s.locks.ReleaseAll(ctx)
	if err != nil || n > 0 {
		s.log.Info("released locks at shutdown", zap.Int("released", n), zap.Error(err))
	}
}

// NewMux returns a ServeMux with the bid handler and the standard
// middleware (logging, metrics). Other task types (scans) are added by the
// caller; the metrics label a type by name once it has a handler here.
func NewMux(bids *BidHandler, m *Metrics, log *zap.Logger) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Use(Logging(log), Instrument(m, registered(mux)))
	mux.Handle(TypeBid, bids)
	return mux
}
