package ledger_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
)

// fence is a fixed token, for writes without a lock.
type fence struct {
	token int64
	key   string
	lock  string // a lock key the benchmark sets to holder "bench"
}

func (f fence) Token() int64     { return f.token }
func (f fence) FenceKey() string { return f.key }
func (f fence) Key() string      { return f.lock }
func (f fence) Holder() string   { return "bench" }

func TestWaitReplicas(t *testing.T) {
	m := redistest.Start(t)
	r := redistest.Start(t, redistest.WithReplicaOf(m))
	m.WaitReplicas(t, 1, 10*time.Second)
	ctx := context.Background()
	rdb, replica := m.Client(t), r.Client(t)
	reg := prometheus.NewRegistry()
	led := ledger.New(rdb, ledger.WithWaitReplicas(1, 500*time.Millisecond), ledger.WithRegisterer(reg))
	locks := lock.NewManager(rdb, lock.WithTTL(lock.MinTTL))

	l, err := locks.TryAcquire(ctx, "m", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if err := led.Intent(ctx, l, "m", "p1", "w1"); err != nil {
		t.Fatal(err)
	}
	// Acknowledged: the replica has the intent (and the fence before it)
	// the moment Intent returns.
	if s := replica.HGet(ctx, led.Key("m", "p1"), "s").Val(); s != "intent" {
		t.Fatalf("replica has state %q after an acknowledged intent", s)
	}
	if v := replica.Get(ctx, l.FenceKey()).Val(); v != strconv.FormatInt(l.Token(), 10) {
		t.Fatalf("replica fence %q, token %d", v, l.Token())
	}

	// The script cache flushed (a restart, a failover to a fresh node):
	// the pipeline falls back to EVAL and still waits.
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := led.Placed(ctx, l, "m", "p1", "w1", "bid-1", 10, "USD"); err != nil {
		t.Fatal(err)
	}
	if s := replica.HGet(ctx, led.Key("m", "p1"), "s").Val(); s != "placed" {
		t.Fatalf("replica has state %q after an acknowledged placed", s)
	}

	// Refusals are refusals, not replica errors.
	if err := led.Intent(ctx, l, "m", "p1", "w1"); !errors.Is(err, ledger.ErrDecided) {
		t.Fatalf("intent over placed: %v", err)
	}

	// Asking for more replicas than exist: the intent is written on the
	// master but reported as an error (fail closed); a final write is not.
	led2 := ledger.New(rdb, ledger.WithWaitReplicas(2, 50*time.Millisecond), ledger.WithRegisterer(reg))
	l2, err := locks.TryAcquire(ctx, "m", "p2")
	if err != nil {
		t.Fatal(err)
	}
	err = led2.Intent(ctx, l2, "m", "p2", "w1")
	var re *ledger.ReplicaError
	if !errors.Is(err, ledger.ErrReplicas) || !errors.As(err, &re) || re.Acked != 1 || re.Want != 2 {
		t.Fatalf("intent with 1 of 2 replicas: %v", err)
	}
	t.Logf("short intent: %v", err)
	if err := led2.Skipped(ctx, l2, "m", "p2", "r", "why"); err != nil {
		t.Fatalf("final write with a short count: %v", err)
	}
	if got := counter(t, reg, "unreplicated"); got != 2 {
		t.Fatalf("unreplicated writes %v, want 2", got)
	}

	// Replica gone: 0 of 1.
	r.Kill()
	l3, err := locks.TryAcquire(ctx, "m", "p3")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = led.Intent(ctx, l3, "m", "p3", "w1")
	if !errors.As(err, &re) || re.Acked != 0 {
		t.Fatalf("intent without a replica: %v", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Fatalf("WAIT took %s, want about its 500ms timeout", d)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "bidder_ledger_writes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// BenchmarkIntentWait measures one intent write (one round trip) on a
// master with one replica on loopback, without and with WAIT 1:
//
//	go test -run '^$' -bench IntentWait -benchtime 3000x ./ledger
func BenchmarkIntentWait(b *testing.B) {
	m := redistest.Start(b)
	redistest.Start(b, redistest.WithReplicaOf(m))
	m.WaitReplicas(b, 1, 10*time.Second)
	rdb := m.Client(b)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		opts []ledger.Option
	}{
		{"wait=off", nil},
		{"wait=1", []ledger.Option{ledger.WithWaitReplicas(1, time.Second)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			led := ledger.New(rdb, c.opts...)
			f := fence{token: 1, key: "bench_fence", lock: "bench_lock"}
			if err := rdb.Set(ctx, f.lock, f.Holder(), 0).Err(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := led.Intent(ctx, f, "bench", c.name+strconv.Itoa(i), "w"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
