package redistest

import (
	"context"
	"strconv"
	"testing"
	"time"

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

func TestTLSReplicaSentinel(t *testing.T) {
	ca := NewCA(t, "redistest CA")
	ca.AuthClients = "yes"
	s := Start(t, WithTLS(ca))
	if err := s.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Fatalf("TLS ping: %v", err)
	}

	m := Start(t)
	r := Start(t, WithReplicaOf(m))
	m.WaitReplicas(t, 1, 10*time.Second)
	if err := m.Client(t).Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Client(t).Wait(context.Background(), 1, time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d %v", n, err)
	}
	if v := r.Client(t).Get(context.Background(), "k").Val(); v != "v" {
		t.Fatalf("replica has %q", v)
	}
	sn := StartSentinel(t, m, "mymaster", 1)
	addr, err := redis.NewSentinelClient(sn.Options()).GetMasterAddrByName(context.Background(), "mymaster").Result()
	if err != nil || addr[1] != strconv.Itoa(m.Port()) {
		t.Fatalf("sentinel says master %v (%v), want port %d", addr, err, m.Port())
	}
}
