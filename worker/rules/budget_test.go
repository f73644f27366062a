package rules

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
)

// 10:30:00 UTC; the hour ends at 11:00, the day at 00:00 the next day.
var budgetNow = time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)

func realRedis(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	s := redistest.Start(t)
	return s, s.Client(t)
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBudgetConcurrentTakesNeverOverspend(t *testing.T) {
	_, rdb := realRedis(t)
	b := NewBudget(rdb, "", 10, 0)
	ctx := ctxT(t)

	const n = 50
	type result struct {
		ok      bool
		retryAt time.Time
		err     error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start // release all at once to maximise contention
			ok, at, err := b.Take(ctx, "sandbox", uniq(), budgetNow)
			results <- result{ok, at, err}
		}()
	}
	close(start)
	wg.Wait()
	close(results)

	taken := 0
	for r := range results {
		if r.err != nil {
			t.Fatalf("Take: %v", r.err)
		}
		if r.ok {
			taken++
			continue
		}
		if want := time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC); !r.retryAt.Equal(want) {
			t.Errorf("refused take says retry at %v, want %v", r.retryAt, want)
		}
	}
	if taken != 10 {
		t.Fatalf("%d of %d takes succeeded with a budget of 10/hour", taken, n)
	}
	hourKey, dayKey := b.Keys("sandbox", budgetNow)
	if v, err := rdb.SCard(ctx, hourKey).Result(); err != nil || v != 10 {
		t.Errorf("%s holds %v postings (%v), want 10: refused takes must not count", hourKey, v, err)
	}
	if n := rdb.Exists(ctx, dayKey).Val(); n != 0 {
		t.Errorf("an unlimited day was tracked in %s", dayKey)
	}
}

func TestBudgetHourRollover(t *testing.T) {
	_, rdb := realRedis(t)
	b := NewBudget(rdb, "bb", 2, 0)
	ctx := ctxT(t)
	last := time.Date(2026, 11, 27, 10, 59, 59, 999e6, time.UTC)
	for i := 0; i < 2; i++ {
		if ok, _, err := b.Take(ctx, "sandbox", uniq(), last); !ok || err != nil {
			t.Fatalf("take %d: %v %v", i, ok, err)
		}
	}
	ok, retryAt, err := b.Take(ctx, "sandbox", uniq(), last)
	nextHour := time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)
	if ok || err != nil || !retryAt.Equal(nextHour) {
		t.Fatalf("third take in the hour: ok=%v retryAt=%v err=%v, want refused until %v", ok, retryAt, err, nextHour)
	}
	// A new wall-clock hour has a fresh budget, however little time passed.
	for i := 0; i < 2; i++ {
		if ok, _, err := b.Take(ctx, "sandbox", uniq(), nextHour); !ok || err != nil {
			t.Fatalf("take %d in the next hour: %v %v", i, ok, err)
		}
	}
	if ok, _, _ := b.Take(ctx, "sandbox", uniq(), nextHour.Add(59*time.Minute)); ok {
		t.Fatal("next hour overspent")
	}
	// Non-UTC times name the same windows.
	if ok, _, _ := b.Take(ctx, "sandbox", uniq(), nextHour.In(time.FixedZone("X", 5*3600+1800))); ok {
		t.Fatal("a non-UTC now escaped the UTC window")
	}
}

func TestBudgetDayLimitStopsBeforeHourLimit(t *testing.T) {
	_, rdb := realRedis(t)
	b := NewBudget(rdb, "", 5, 3)
	ctx := ctxT(t)
	for i := 0; i < 3; i++ {
		// Spread over hours: the hour budget never runs out, the day does.
		at := budgetNow.Add(time.Duration(i) * time.Hour)
		if ok, _, err := b.Take(ctx, "sandbox", uniq(), at); !ok || err != nil {
			t.Fatalf("take %d: %v %v", i, ok, err)
		}
	}
	at := budgetNow.Add(5 * time.Hour) // 15:30, an untouched hour
	ok, retryAt, err := b.Take(ctx, "sandbox", uniq(), at)
	nextDay := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	if ok || err != nil || !retryAt.Equal(nextDay) {
		t.Fatalf("fourth take of the day: ok=%v retryAt=%v err=%v, want refused until %v", ok, retryAt, err, nextDay)
	}
	hourKey, _ := b.Keys("sandbox", at)
	if n, err := rdb.Exists(ctx, hourKey).Result(); err != nil || n != 0 {
		t.Fatalf("a refused take created/incremented the hour counter %s (%d, %v)", hourKey, n, err)
	}
	if ok, _, err := b.Take(ctx, "sandbox", uniq(), nextDay); !ok || err != nil {
		t.Fatalf("first take of the next day: %v %v", ok, err)
	}
}

func TestBudgetMarketplacesAreIndependent(t *testing.T) {
	_, rdb := realRedis(t)
	b := NewBudget(rdb, "", 1, 1)
	ctx := ctxT(t)
	for _, mp := range []string{"upwork", "fiverr"} {
		if ok, _, err := b.Take(ctx, mp, uniq(), budgetNow); !ok || err != nil {
			t.Fatalf("%s: %v %v", mp, ok, err)
		}
	}
	if ok, _, _ := b.Take(ctx, "upwork", uniq(), budgetNow); ok {
		t.Fatal("upwork overspent")
	}
}

func TestBudgetUnlimited(t *testing.T) {
	_, rdb := realRedis(t)
	b := NewBudget(rdb, "", 0, 0)
	ctx := ctxT(t)
	for i := 0; i < 100; i++ {
		if ok, _, err := b.Take(ctx, "sandbox", uniq(), budgetNow); !ok || err != nil {
			t.Fatalf("take %d with no limits: %v %v", i, ok, err)
		}
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("an unlimited budget stored %d keys", n)
	}
}

// TestBudgetCountsAPostingOncePerWindow: a posting whose bid is attempted
// again (after a failed bid, or a script resent by the client) costs one
// unit of each window, and a unit of a new window when it comes.
func TestBudgetCountsAPostingOncePerWindow(t *testing.T) {
	_, rdb := realRedis(t)
	b := NewBudget(rdb, "", 2, 3)
	ctx := ctxT(t)
	for i := 0; i < 5; i++ {
		if ok, _, err := b.Take(ctx, "sandbox", "same", budgetNow); !ok || err != nil {
			t.Fatalf("take %d of one posting: %v %v", i, ok, err)
		}
	}
	if ok, _, err := b.Take(ctx, "sandbox", "other", budgetNow); !ok || err != nil {
		t.Fatalf("a second posting: %v %v", ok, err)
	}
	if ok, _, _ := b.Take(ctx, "sandbox", "third", budgetNow); ok {
		t.Fatal("a third posting in an hour of 2")
	}
	next := budgetNow.Add(time.Hour)
	if ok, _, err := b.Take(ctx, "sandbox", "same", next); !ok || err != nil {
		t.Fatalf("the posting again in the next hour: %v %v", ok, err)
	}
	hourKey, dayKey := b.Keys("sandbox", next)
	if h, d := rdb.SCard(ctx, hourKey).Val(), rdb.SCard(ctx, dayKey).Val(); h != 1 || d != 2 {
		t.Fatalf("next hour holds %d, the day %d postings; want 1 and 2", h, d)
	}
}

func TestBudgetFailsClosedWhenRedisDies(t *testing.T) {
	s, rdb := realRedis(t)
	b := NewBudget(rdb, "", 10, 100)
	ctx := ctxT(t)
	if ok, _, err := b.Take(ctx, "sandbox", uniq(), budgetNow); !ok || err != nil {
		t.Fatalf("take before kill: %v %v", ok, err)
	}
	s.Kill()
	ok, _, err := b.Take(ctx, "sandbox", uniq(), budgetNow)
	if ok || err == nil {
		t.Fatalf("take with Redis dead: ok=%v err=%v, want an error and no bid", ok, err)
	}
	if !errors.Is(err, ErrBudgetUnavailable) || !strings.Contains(err.Error(), `"sandbox"`) {
		t.Fatalf("error %v: want ErrBudgetUnavailable naming the marketplace", err)
	}
}

func TestBudgetCorruptCounterFailsClosed(t *testing.T) {
	_, rdb := realRedis(t)
	b := NewBudget(rdb, "", 10, 0)
	ctx := ctxT(t)
	hourKey, _ := b.Keys("sandbox", budgetNow)
	if err := rdb.Set(ctx, hourKey, "lots", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := b.Take(ctx, "sandbox", uniq(), budgetNow); ok || !errors.Is(err, ErrBudgetUnavailable) {
		t.Fatalf("take over a corrupt counter: ok=%v err=%v", ok, err)
	}
}

// The key layout is a contract with operators and with Redis Cluster: both
// keys of a marketplace must carry the same hash tag.
func TestBudgetKeysAndExpiry(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	b := NewBudget(rdb, "", 10, 100)

	hourKey, dayKey := b.Keys("sandbox", budgetNow)
	if want := "bid_budget:{sandbox}:hs:" + strconv.FormatInt(budgetNow.Unix()/3600, 10); hourKey != want {
		t.Errorf("hour key %q, want %q", hourKey, want)
	}
	if want := "bid_budget:{sandbox}:ds:" + strconv.FormatInt(budgetNow.Unix()/86400, 10); dayKey != want {
		t.Errorf("day key %q, want %q", dayKey, want)
	}
	if hashTag(hourKey) != "sandbox" || hashTag(dayKey) != "sandbox" {
		t.Errorf("hash tags %q %q, want both sandbox", hashTag(hourKey), hashTag(dayKey))
	}

	if ok, _, err := b.Take(context.Background(), "sandbox", uniq(), budgetNow); !ok || err != nil {
		t.Fatalf("take: %v %v", ok, err)
	}
	// 30 minutes to the end of the hour plus the hour of grace; 13.5 hours
	// to the end of the day plus the same grace.
	if got, want := mr.TTL(hourKey), 90*time.Minute; got != want {
		t.Errorf("hour key TTL %v, want %v", got, want)
	}
	if got, want := mr.TTL(dayKey), 14*time.Hour+30*time.Minute; got != want {
		t.Errorf("day key TTL %v, want %v", got, want)
	}
	mr.FastForward(90*time.Minute + time.Millisecond)
	if mr.Exists(hourKey) || !mr.Exists(dayKey) {
		t.Errorf("after 90m: hour key exists=%v (want gone), day key exists=%v (want kept)", mr.Exists(hourKey), mr.Exists(dayKey))
	}
}

func TestBudgetRejectsBadArgumentsWithoutRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	for _, tc := range []struct {
		name string
		b    *Budget
		mp   string
	}{
		{"nil client", NewBudget(nil, "", 1, 1), "sandbox"},
		{"negative hour", NewBudget(rdb, "", -1, 1), "sandbox"},
		{"negative day", NewBudget(rdb, "", 1, -1), "sandbox"},
		{"empty marketplace", NewBudget(rdb, "", 1, 1), ""},
		{"brace in marketplace", NewBudget(rdb, "", 1, 1), "a}b"},
		{"brace in prefix", NewBudget(rdb, "x{", 1, 1), "sandbox"},
	} {
		ok, _, err := tc.b.Take(context.Background(), tc.mp, uniq(), budgetNow)
		if ok || !errors.Is(err, ErrInvalidBudget) {
			t.Errorf("%s: ok=%v err=%v, want ErrInvalidBudget", tc.name, ok, err)
		}
	}
	if keys := mr.Keys(); len(keys) != 0 {
		t.Fatalf("bad arguments wrote keys %v", keys)
	}
}

var uniqN atomic.Int64

// uniq is a posting ID no other take in the test used.
func uniq() string { return "p" + strconv.FormatInt(uniqN.Add(1), 10) }

// hashTag is Redis Cluster's rule: the part between the first '{' and the
// next '}', if non-empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// TestBudgetLeft: Left reads what Take left in both windows, spends
// nothing, and reports an unlimited window as -1.
func TestBudgetLeft(t *testing.T) {
	_, rdb := realRedis(t)
	ctx := ctxT(t)
	b := NewBudget(rdb, "", 3, 5)
	if h, d, err := b.Left(ctx, "sandbox", budgetNow); err != nil || h != 3 || d != 5 {
		t.Fatalf("fresh: hour %d day %d %v", h, d, err)
	}
	for range 2 {
		if ok, _, err := b.Take(ctx, "sandbox", uniq(), budgetNow); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	for range 2 { // reading twice spends nothing
		if h, d, err := b.Left(ctx, "sandbox", budgetNow); err != nil || h != 1 || d != 3 {
			t.Fatalf("after 2 bids: hour %d day %d %v", h, d, err)
		}
	}
	// The next hour starts full, the day goes on.
	if h, d, err := b.Left(ctx, "sandbox", budgetNow.Add(time.Hour)); err != nil || h != 3 || d != 3 {
		t.Fatalf("next hour: hour %d day %d %v", h, d, err)
	}
	if h, d, err := NewBudget(rdb, "", 0, 5).Left(ctx, "sandbox", budgetNow); err != nil || h != -1 || d != 3 {
		t.Fatalf("no hourly limit: hour %d day %d %v", h, d, err)
	}
	// Spent beyond the limit (the limit was lowered): 0, not negative.
	if h, _, err := NewBudget(rdb, "", 1, 0).Left(ctx, "sandbox", budgetNow); err != nil || h != 0 {
		t.Fatalf("lowered limit: hour %d %v", h, err)
	}
	if _, _, err := b.Left(ctx, "bad{id}", budgetNow); !errors.Is(err, ErrInvalidBudget) {
		t.Fatalf("bad id: %v", err)
	}
}

// TestBudgetPerWeek (issue 17): a weekly cap, Monday 00:00 UTC to the next,
// over the hourly and daily ones; refused until next Monday.
func TestBudgetPerWeek(t *testing.T) {
	_, rdb := realRedis(t)
	b := NewBudget(rdb, "", 0, 0, PerWeek(2))
	ctx := ctxT(t)
	// 2026-11-27 is a Friday; the week began on Monday the 23rd.
	for i := 0; i < 2; i++ {
		if ok, _, err := b.Take(ctx, "sandbox", uniq(), budgetNow.Add(time.Duration(i)*24*time.Hour)); !ok || err != nil {
			t.Fatalf("take %d: %v %v", i, ok, err)
		}
	}
	sunday := time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC)
	ok, retryAt, err := b.Take(ctx, "sandbox", uniq(), sunday)
	monday := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	if ok || err != nil || !retryAt.Equal(monday) {
		t.Fatalf("third take of the week: ok=%v retryAt=%v err=%v, want refused until %v", ok, retryAt, err, monday)
	}
	if ok, _, err := b.Take(ctx, "sandbox", uniq(), monday); !ok || err != nil {
		t.Fatalf("first take of the next week: %v %v", ok, err)
	}
	if _, _, err := NewBudget(rdb, "", 0, 0, PerWeek(-1)).Take(ctx, "sandbox", uniq(), budgetNow); !errors.Is(err, ErrInvalidBudget) {
		t.Fatalf("negative week: %v", err)
	}
}

// TestBudgetPerMonth (issue 17, item 5): a monthly cap, the 1st 00:00 UTC
// to the next (a marketplace's own bid quota, as Freelancer grants bids by
// plan each month); refused until the 1st, then open again.
func TestBudgetPerMonth(t *testing.T) {
	_, rdb := realRedis(t)
	b := NewBudget(rdb, "", 0, 0, PerMonth(2))
	ctx := ctxT(t)
	for i := 0; i < 2; i++ {
		if ok, _, err := b.Take(ctx, "sandbox", uniq(), budgetNow.Add(time.Duration(i)*24*time.Hour)); !ok || err != nil {
			t.Fatalf("take %d: %v %v", i, ok, err)
		}
	}
	last := time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)
	ok, retryAt, err := b.Take(ctx, "sandbox", uniq(), last)
	first := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if ok || err != nil || !retryAt.Equal(first) {
		t.Fatalf("third take of the month: ok=%v retryAt=%v err=%v, want refused until %v", ok, retryAt, err, first)
	}
	if ok, _, err := b.Take(ctx, "sandbox", uniq(), first); !ok || err != nil {
		t.Fatalf("first take of the next month: %v %v", ok, err)
	}
	// December's window ends on January 1st of the next year.
	dec := NewBudget(rdb, "", 0, 0, PerMonth(1))
	if ok, _, err := dec.Take(ctx, "other", uniq(), first); !ok || err != nil {
		t.Fatalf("december take: %v %v", ok, err)
	}
	if _, retryAt, _ := dec.Take(ctx, "other", uniq(), first.Add(time.Hour)); !retryAt.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("december retry at %v, want 2027-01-01", retryAt)
	}
	if _, _, err := NewBudget(rdb, "", 0, 0, PerMonth(-1)).Take(ctx, "sandbox", uniq(), budgetNow); !errors.Is(err, ErrInvalidBudget) {
		t.Fatalf("negative month: %v", err)
	}
}
