package lock_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/lock"
)

// go test -run '^$' -bench . ./lock
// One op = TryAcquire + Release of a distinct posting, watchdog and fencing
// on. The peer comparison (raw go-redis, redislock, redsync) is bench/.
func BenchmarkAcquireRelease(b *testing.B) {
	s := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), PoolSize: 64})
	defer rdb.Close()
	m := lock.NewManager(rdb)
	ctx := context.Background()
	for _, par := range []int{1, 64} {
		b.Run("goroutines="+strconv.Itoa(par), func(b *testing.B) {
			var seq atomic.Int64
			b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0)))
			if par == 1 {
				for b.Loop() {
					if !cycle(b, ctx, m, seq.Add(1)) {
						return
					}
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() && cycle(b, ctx, m, seq.Add(1)) {
				}
			})
		})
	}
}

// cycle uses b.Error, not b.Fatal: it runs on RunParallel's goroutines.
func cycle(b *testing.B, ctx context.Context, m *lock.Manager, n int64) bool {
	l, err := m.TryAcquire(ctx, "bench", "p"+strconv.FormatInt(n, 10))
	if err != nil {
		b.Error(err)
		return false
	}
	if err := l.Release(ctx); err != nil {
		b.Error(err)
		return false
	}
	return true
}
