package redistest

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestKillRestartKeepsAOFData(t *testing.T) {
	s := Start(t, WithAppendOnly("always"))
	ctx := context.Background()
	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded against a killed server")
	}
	s.Restart()
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart from AOF: got %q, %v; want v", got, err)
	}
}

func TestPassword(t *testing.T) {
	s := Start(t, WithPassword("s3cret"))
	if err := s.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Fatalf("authenticated ping: %v", err)
	}
	anon := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer anon.Close()
	if err := anon.Set(context.Background(), "k", "v", 0).Err(); err == nil {
		t.Fatal("unauthenticated write accepted")
	}
}
