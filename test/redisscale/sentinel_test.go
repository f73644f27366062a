package redisscale

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/ledger"
)

const masterName = "bidder"

// TestSentinelFailover runs a bid load from three instances through a
// Sentinel client (1 master, 1 replica, 3 sentinels, quorum 2), SIGKILLs
// the master mid-load, and checks that Sentinel promotes the replica, that
// bidding resumes without help and that every posting ends decided.
//
// With ledger WAIT 1 the sandbox must see no duplicate. With one replica,
// WAIT 1 cannot be met while the old master is down, so intents fail
// closed until it comes back (as an orchestrator would restart it) and
// Sentinel makes it the new master's replica. Without WAIT the run only
// reports what the sandbox saw: an intent the dead master acknowledged but
// never replicated can be lost, and the posting bid on again.
func TestSentinelFailover(t *testing.T) {
	t.Run("wait=1", func(t *testing.T) { sentinelRun(t, true) })
	t.Run("wait=off", func(t *testing.T) { sentinelRun(t, false) })
}

func sentinelRun(t *testing.T, waitReplicas bool) {
	master := redistest.Start(t)
	replica := redistest.Start(t, redistest.WithReplicaOf(master))
	master.WaitReplicas(t, 1, 10*time.Second)
	var sentinels []*redistest.Server
	var addrs []string
	for i := 0; i < 3; i++ {
		s := redistest.StartSentinel(t, master, masterName, 2)
		sentinels = append(sentinels, s)
		addrs = append(addrs, s.Addr())
	}
	ctx := context.Background()
	sc := func(s *redistest.Server) *redis.SentinelClient {
		c := redis.NewSentinelClient(s.Options())
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// Each sentinel must know the replica and the other sentinels before
	// a failover can be agreed on.
	wait.Until(t, 30*time.Second, "sentinels see the replica and each other", func() bool {
		for _, s := range sentinels {
			c := sc(s)
			reps, err1 := c.Replicas(ctx, masterName).Result()
			others, err2 := c.Sentinels(ctx, masterName).Result()
			if err1 != nil || err2 != nil || len(reps) != 1 || len(others) != 2 {
				return false
			}
		}
		return true
	})

	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: masterName, SentinelAddrs: addrs,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	t.Cleanup(func() { _ = rdb.Close() })

	const postings = 800
	m := newMarket(t, postings, 60*time.Millisecond)
	var lopts []ledger.Option
	if waitReplicas {
		lopts = append(lopts, ledger.WithWaitReplicas(1, 200*time.Millisecond))
	}
	var stacks []*stack
	for i := 0; i < 3; i++ {
		stacks = append(stacks, newStack(t, rdb, m, false, lopts...))
	}
	res := &loadResult{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		drive(t, stacks, m.postings(t), 3, time.Now().Add(100*time.Second), res)
	}()

	wait.Until(t, 60*time.Second, "a quarter of the bids placed", func() bool { return m.srv.Stats().Bids >= postings/4 })
	before := m.srv.Stats().Bids
	killed := time.Now()
	master.Kill()
	newPort := strconv.Itoa(replica.Port())
	wait.Until(t, 30*time.Second, "sentinels promote the replica", func() bool {
		n := 0
		for _, s := range sentinels {
			if a, err := sc(s).GetMasterAddrByName(ctx, masterName).Result(); err == nil && a[1] == newPort {
				n++
			}
		}
		return n >= 2
	})

	promoted := time.Since(killed)
	afterFailover := m.srv.Stats().Bids
	if waitReplicas {
		// WAIT 1 needs a replica: bring the old master back; Sentinel
		// turns it into the new master's replica.
		master.Restart()
		// Sentinel reconfigures it within seconds on a quiet machine; saying
		// it ourselves too keeps a loaded CI machine from timing out.
		if err := redis.NewClient(master.Options()).Do(ctx, "REPLICAOF", "127.0.0.1", newPort).Err(); err != nil {
			t.Fatalf("replicaof: %v", err)
		}
		replica.WaitReplicas(t, 1, 60*time.Second)
	}
	t.Cleanup(func() {
		if t.Failed() {
			res.log(t)
			for _, s := range []*redistest.Server{master, replica} {
				info := redis.NewClient(s.Options()).Info(ctx, "replication").Val()
				t.Logf("%s: %s", s.Addr(), strings.ReplaceAll(info, "\r\n", " "))
			}
			var b bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			for _, g := range strings.Split(b.String(), "\n\n") {
				if strings.Contains(g, "redisscale.drive") {
					t.Logf("%s", g)
				}
			}
		}
	})
	wait.Until(t, 60*time.Second, "bidding resumes after the failover", func() bool { return m.srv.Stats().Bids > afterFailover+10 })
	resumed := time.Since(killed)
	<-done
	st := m.srv.Stats()
	t.Logf("wait=%v: %d bids before the kill, promoted after %s, bidding again %s after the kill; "+
		"tasks done %d of %d, handler errors %d; sandbox: bids %d, duplicate bids %d, postings with several bids %d",
		waitReplicas, before, promoted.Round(time.Millisecond), resumed.Round(time.Millisecond),
		res.done.Load(), postings, res.errors.Load(), st.Bids, st.DuplicateBids, st.PostingsWithMultipleBids)
	res.log(t)
	if res.done.Load() != postings {
		t.Fatalf("%d of %d bid tasks finished", res.done.Load(), postings)
	}
	if waitReplicas {
		assertNoDuplicates(t, m)
	} else if st.DuplicateBids > 0 {
		t.Logf("FINDING: without WAIT the failover produced %d duplicate bid(s)", st.DuplicateBids)
	}
}
