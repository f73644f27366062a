package notify

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/lock"
)

// TestSweepOnClusterWithHashTags: with hash tags each posting's events sit
// in its slot's outbox; the sweeper reads all 16384 in pipelined batches
// across three masters, and every event reaches the webhook once.
func TestSweepOnClusterWithHashTags(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cl := redistest.StartCluster(t, 3, 0)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	e := newEnvOn(t, rdb, true, 0, 0)
	e.cfg.Routes = e.cfg.Routes[:1]
	slots := map[int]bool{}
	const n = 12
	for i := range n {
		id := fmt.Sprintf("p-%d", i)
		e.placed(t, id)
		slots[lock.KeySlot(e.led.OutboxKey(mp, id))] = true
	}
	if len(slots) < 3 {
		t.Fatalf("events in %d slots only: the test would not cross nodes", len(slots))
	}
	if got := e.outboxLen(t); got != n {
		t.Fatalf("outboxes hold %d, want %d", got, n)
	}
	sw := NewSweeper(e.rdb, e.client, e.led, e.cfg, e.metrics, nil)
	if err := sw.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.outboxLen(t); got != 0 {
		t.Fatalf("outboxes still hold %d after the sweep", got)
	}
	e.serve(t, NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics)))
	wait.Until(t, 30*time.Second, "every event at the webhook", func() bool {
		_, ok, _, _ := e.hook.snapshot()
		return len(ok) == n
	})

	keys, _, _, _ := e.hook.snapshot()
	for k, c := range keys {
		if c != 1 {
			t.Errorf("%s sent %d times", k, c)
		}
	}
}
