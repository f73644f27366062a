package main

import (
	"context"
	"fmt"
	"time"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/redisconn"
	"github.com/bidder/bidder/lock"
)

// opsConn opens Redis for an operator command: it must be a real Redis
// (an embedded one would be a fresh, empty one) and it must answer now.
func opsConn(ctx context.Context, f *configFlags) (config.Config, *redisconn.Conn, error) {
	cfg, err := f.load()
	if err != nil {
		return cfg, nil, err
	}
	if cfg.Redis.Mode() == config.ModeEmbedded {
		return cfg, nil, &config.Error{Key: "redis", Problem: "not configured: set REDIS_URL or redis.* (an embedded Redis lives only inside its 'run' process)"}
	}
	// The level and format the config asks for; go-redis' dial errors go
	// there (debug) instead of ahead of the one line the command prints.
	if _, err := f.logger(cfg); err != nil {
		return cfg, nil, err
	}
	conn, err := redisconn.Open(cfg)
	if err != nil {
		return cfg, nil, err
	}
	if err := conn.Ping(ctx, 3*time.Second); err != nil {
		_ = conn.Close()
		return cfg, nil, err
	}
	return cfg, conn, nil
}

// validMarketplaceFilter checks an optional --marketplace: the ID becomes
// part of a SCAN pattern, where "*" or "[" would match other marketplaces.
func validMarketplaceFilter(id string) error {
	if id == "" {
		return nil
	}
	if err := lock.ValidateMarketplaceID(id); err != nil {
		return usageError{fmt.Errorf("--marketplace: %w", err)}
	}
	return nil
}
