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

func TestWaitReplicas(t *testing.T) {
	m := redistest.Start(t)
	r := redistest.Start(t, redistest.WithReplicaOf(m))
	m.WaitReplicas(t, 1, 10*time.Second)
	ctx := context.Background()
	rdb, replica := m.Client(t), r.Client(t)
	// Connected is not yet in sync: wait until the replica acknowledges a
	// write before measuring anything.
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Set(ctx, "sync-probe", 1, 0).Err() == nil && rdb.Do(ctx, "wait", 1, 200).Val() != int64(1) {
		if time.Now().After(deadline) {
			t.Fatal("the replica never acknowledged a write")
		}
	}
	reg := prometheus.NewRegistry()
	led := ledger.New(rdb, ledger.WithWaitReplicas(1, 500*time.Millisecond), ledger.WithRegisterer(reg))
	locks := lock.NewManager(rdb, lock.WithTTL(time.Minute))

	_, l := claim(t, led, locks, "p1", bid)
	// Acknowledged: the replica has the intent, the lock and the counter
	// the moment the claim returns.
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
	if err := settle(ctx, led, l, "p1", placed); err != nil {
		t.Fatal(err)
	}
	if s := replica.HGet(ctx, led.Key("m", "p1"), "s").Val(); s != "placed" {
		t.Fatalf("replica has state %q after an acknowledged placed", s)
	}

	// Refusals are refusals, not replica errors.
	if c, _ := claim(t, led, locks, "p1", bid); c.Outcome != ledger.Decided {
		t.Fatalf("claim over placed: %+v", c)
	}

	// More replicas asked for than exist: the intent is written on the
	// master but reported as an error (fail closed: no bid); a final write
	// is not.
	led2 := ledger.New(rdb, ledger.WithWaitReplicas(2, 50*time.Millisecond), ledger.WithRegisterer(reg))
	a, _ := locks.Prepare("m", "p2")
	c, err := led2.Claim(ctx, a, "m", "p2", bid)
	var re *ledger.ReplicaError
	if !errors.Is(err, ledger.ErrReplicas) || !errors.As(err, &re) || re.Acked != 1 || re.Want != 2 || c.Outcome != ledger.Claimed {
		t.Fatalf("intent with 1 of 2 replicas: %+v, %v", c, err)
	}
	l2 := a.Held(ctx, c.Token)
	if err := led2.Settle(ctx, l2, "m", "p2", ledger.Outcome{State: ledger.StateNone, Release: true}); err != nil {
		t.Fatalf("clearing the unreplicated intent: %v", err)
	}
	l2.MarkReleased()
	a, _ = locks.Prepare("m", "p3")
	if c, err := led2.Claim(ctx, a, "m", "p3", skip); err != nil || c.Outcome != ledger.Recorded {
		t.Fatalf("final write with a short count: %+v, %v", c, err)
	}
	if got := counter(t, reg, "unreplicated"); got != 3 {
		t.Fatalf("unreplicated writes %v, want 3", got)
	}

	// Replica gone: 0 of 1, after the WAIT timeout.
	r.Kill()
	a, _ = locks.Prepare("m", "p4")
	start := time.Now()
	_, err = led.Claim(ctx, a, "m", "p4", bid)
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

// BenchmarkClaimWait measures one claim for a bid (one round trip) on a
// master with one replica on loopback, without and with WAIT 1:
//
//	go test -run '^$' -bench ClaimWait -benchtime 3000x ./ledger
func BenchmarkClaimWait(b *testing.B) {
	m := redistest.Start(b)
	redistest.Start(b, redistest.WithReplicaOf(m))
	m.WaitReplicas(b, 1, 10*time.Second)
	rdb := m.Client(b)
	ctx := context.Background()
	locks := lock.NewManager(rdb, lock.WithTTL(time.Minute))
	for _, c := range []struct {
		name string
		opts []ledger.Option
	}{
		{"wait=off", nil},
		{"wait=1", []ledger.Option{ledger.WithWaitReplicas(1, time.Second)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			led := ledger.New(rdb, c.opts...)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id := c.name + strconv.Itoa(i)
				a, err := locks.Prepare("bench", id)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := led.Claim(ctx, a, "bench", id, bid); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
