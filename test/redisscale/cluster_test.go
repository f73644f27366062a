package redisscale

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/redisconn"
	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/worker"
)

// TestClusterSlotMigration runs the whole pipeline (scanner, asynq, lock,
// ledger) on a 3-master Redis Cluster with hash tags, through the client
// redisconn builds from a cluster config. Mid-run every slot of the master
// holding the bid queue ({bids}) migrates to another master (redis-cli
// --cluster reshard: MIGRATE key by key, ASK then MOVED redirects). No
// lock or ledger script may fail with CROSSSLOT, every posting ends
// decided and the sandbox sees no duplicate.
func TestClusterSlotMigration(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	cfg := config.Defaults()
	cfg.Redis.Cluster.Addrs = cl.Addrs()
	cfg.Redis.HashTags = true
	conn, err := redisconn.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cc := conn.Client.(*redis.ClusterClient)
	ctx := context.Background()
	if err := conn.Ping(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}

	// The master holding the bid queue, and another one.
	queueKey := "asynq:{" + worker.QueueBids + "}:pending"
	src, err := cc.MasterForKey(ctx, queueKey)
	if err != nil {
		t.Fatal(err)
	}
	srcID := src.Do(ctx, "cluster", "myid").Val().(string)
	var dstID string
	for _, m := range cl.Masters {
		c := m.Client(t)
		if id := c.Do(ctx, "cluster", "myid").Val().(string); id != srcID {
			dstID = id
			break
		}
	}
	srcSlots := countSlots(t, cc, srcID)

	core, logs := observer.New(zapcore.DebugLevel)
	m := newMarket(t, 600, 40*time.Millisecond)
	runPipeline(t, conn.Client, m, true, 120*time.Second, zap.New(core), func() {
		start := time.Now()
		out, err := exec.Command(redistest.CLI(t), "--cluster", "reshard", cl.Masters[0].Addr(),
			"--cluster-from", srcID, "--cluster-to", dstID, "--cluster-slots", "16384",
			"--cluster-yes", "--cluster-pipeline", "50").CombinedOutput()
		if err != nil {
			t.Fatalf("reshard: %v\n%s", err, tail(string(out)))
		}
		t.Logf("moved %d slots (the bid queue's among them) mid-run in %s", srcSlots, time.Since(start).Round(time.Millisecond))
	})
	st := assertNoDuplicates(t, m)
	if st.Bids != 600 {
		t.Fatalf("%d bids for 600 postings", st.Bids)
	}
	if n := countSlots(t, cc, srcID); n != 0 {
		t.Fatalf("source master still has %d slots", n)
	}
	now, _ := cc.MasterForKey(ctx, queueKey)
	if now.Options().Addr == src.Options().Addr {
		t.Fatal("the bid queue did not move")
	}
	redirects := 0
	for _, e := range logs.All() {
		s := e.Message + " " + contextString(e)
		if strings.Contains(s, "CROSSSLOT") {
			t.Fatalf("CROSSSLOT: %s", s)
		}
		if strings.Contains(s, "MOVED") || strings.Contains(s, "ASK") || strings.Contains(s, "TRYAGAIN") {
			redirects++
		}
	}
	t.Logf("sandbox: %d bids, no duplicate; %d log entries, %d mention a redirect", st.Bids, logs.Len(), redirects)
}

func countSlots(t *testing.T, cc *redis.ClusterClient, nodeID string) int {
	t.Helper()
	cc.ReloadState(context.Background())
	slots, err := cc.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range slots {
		if len(s.Nodes) > 0 && s.Nodes[0].ID == nodeID {
			n += s.End - s.Start + 1
		}
	}
	return n
}

func contextString(e observer.LoggedEntry) string {
	var b strings.Builder
	for k, v := range e.ContextMap() {
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strings.ReplaceAll(strings.TrimSpace(toString(v)), "\n", " "))
		b.WriteString(" ")
	}
	return b.String()
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
