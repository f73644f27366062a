package scanner

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// BenchmarkRecoveryPass measures one recovery pass of a marketplace with 1M
// decided postings (their records stay, the index does not hold them) and
// `open` undecided ones whose check is due and whose task exists (the
// steady state: a backlog waiting on a budget window or an outage), then
// the same with hash tags (one index per Cluster slot: 16384 small reads,
// run here on one node). It reports Redis' command time and its memory.
//
//	go test -run '^$' -bench RecoveryPass -benchtime 5x ./scanner
func BenchmarkRecoveryPass(b *testing.B) {
	const decided = 1_000_000
	for _, c := range []struct {
		name     string
		open     int
		hashTags bool
	}{{"decided=1M/open=0", 0, false}, {"decided=1M/open=10k", 10_000, false}, {"decided=1M/open=0/hash_tags", 0, true}} {
		b.Run(c.name, func(b *testing.B) {
			s := redistest.Start(b)
			rdb := s.Client(b)
			ctx := context.Background()
			led := ledger.New(rdb, ledger.WithHashTags(c.hashTags), ledger.WithRecheck(time.Minute))
			fill(b, rdb, led, decided)
			used0 := memUsed(b, rdb)
			ids := make([]string, c.open)
			found := make([]ledger.Found, 0, 1000)
			for i := range ids {
				ids[i] = "open-" + strconv.Itoa(i)
				found = append(found, ledger.Found{PostingID: ids[i], Payload: []byte(`{"v":1,"posting":{"marketplace_id":"m","id":"` + ids[i] + `"}}`)})
				if len(found) == cap(found) || i == len(ids)-1 {
					if _, err := led.Discover(ctx, "m", found); err != nil {
						b.Fatal(err)
					}
					found = found[:0]
				}
			}
			// Their tasks exist, so the pass only checks and pushes them on.
			pipe := rdb.Pipeline()
			for _, id := range ids {
				pipe.HSet(ctx, worker.TaskKey("bids:m", "bid:m:"+id), "state", "pending")
			}
			if _, err := pipe.Exec(ctx); err != nil && c.open > 0 {
				b.Fatal(err)
			}
			perOpen := 0.0
			if c.open > 0 {
				perOpen = float64(memUsed(b, rdb)-used0) / float64(c.open)
			}
			r := &recoverer{rdb: rdb, client: asynq.NewClientFromRedisClient(rdb), insp: asynq.NewInspectorFromRedisClient(rdb), ledger: led, every: time.Hour,
				retention: time.Hour, perMarket: true, waits: rules.NewWaits(rdb, ""), metrics: NewMetrics(nil), log: zap.NewNop()}
			var usec, calls int64
			var wall time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				// Make every open posting due again.
				if c.open > 0 {
					if err := rdb.ZUnionStore(ctx, led.OpenKey("m", ids[0]), &redis.ZStore{Keys: []string{led.OpenKey("m", ids[0])}, Weights: []float64{0}}).Err(); err != nil {
						b.Fatal(err)
					}
				}
				u0, c0 := cmdStats(b, rdb)
				b.StartTimer()
				start := time.Now()
				for {
					rec, err := r.run(ctx, "m")
					if err != nil {
						b.Fatal(err)
					}
					if rec.Missing != 0 {
						b.Fatalf("pass found %d missing tasks", rec.Missing)
					}
					if rec.Due < recoverBatch {
						break
					}
				}
				wall += time.Since(start)
				b.StopTimer()
				u1, c1 := cmdStats(b, rdb)
				usec += u1 - u0
				calls += c1 - c0
			}
			b.ReportMetric(float64(usec)/float64(b.N)/1e3, "redis_ms/pass")
			b.ReportMetric(float64(calls)/float64(b.N), "redis_cmds/pass")
			b.ReportMetric(float64(wall.Microseconds())/float64(b.N)/1e3, "wall_ms/pass")
			b.ReportMetric(perOpen, "index+payload_B/open_posting")
		})
	}
}

// fill writes n decided records the way the claim leaves them (no index
// entry, no payload), pipelined.
func fill(b *testing.B, rdb *redis.Client, led *ledger.Ledger, n int) {
	b.Helper()
	ctx := context.Background()
	holder := "host:1:" + strconv.FormatInt(time.Now().UnixNano(), 16)
	for i := 0; i < n; i += 10_000 {
		pipe := rdb.Pipeline()
		for j := i; j < min(i+10_000, n); j++ {
			pipe.HSet(ctx, led.Key("m", "p-"+strconv.Itoa(j)), "s", "placed", "h", holder, "t", j+1, "at", 1796000000000, "b", "b-1", "amt", 100, "cur", "USD")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func memUsed(b *testing.B, rdb *redis.Client) int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range splitLines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// cmdStats is Redis' total command time (usec) and calls so far.
func cmdStats(b *testing.B, rdb *redis.Client) (usec, calls int64) {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range splitLines(info) {
		_, rest, ok := cut(line, "calls=")
		if !ok {
			continue
		}
		c, _ := strconv.ParseInt(before(rest, ","), 10, 64)
		_, u, _ := cut(rest, "usec=")
		us, _ := strconv.ParseInt(before(u, ","), 10, 64)
		calls += c
		usec += us
	}
	return usec, calls
}

func splitLines(s string) []string             { return strings.Split(s, "\n") }
func cut(s, sep string) (string, string, bool) { return strings.Cut(s, sep) }
func before(s, sep string) string              { b, _, _ := strings.Cut(s, sep); return b }
