package proposal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
)

// 10:30:00 UTC; the hour ends at 11:00, the day at 00:00 the next day.
var spendNow = time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)

func realRedis(t *testing.T) *redis.Client {
	t.Helper()
	return redistest.Start(t).Client(t)
}

func used(t *testing.T, s *Spend, mp string, now time.Time) (int64, int64) {
	t.Helper()
	h, d, err := s.Used(context.Background(), mp, now)
	if err != nil {
		t.Fatalf("Used: %v", err)
	}
	return h, d
}

func TestSpendReserveThenSettle(t *testing.T) {
	rdb := realRedis(t)
	s := NewSpend(rdb, "", 10_000, 50_000)
	ctx := ctxT(t)
	r, err := s.Reserve(ctx, "sandbox", "req-1", 1000, spendNow)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if h, d := used(t, s, "sandbox", spendNow); h != 1000 || d != 1000 {
		t.Fatalf("after reserve: hour %d day %d, want 1000", h, d)
	}
	// The call ends after the hour turned: the reservation's own windows
	// are corrected, not the new hour's.
	later := spendNow.Add(45 * time.Minute)
	if err := s.Settle(ctx, r, 300); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if h, d := used(t, s, "sandbox", spendNow); h != 300 || d != 300 {
		t.Fatalf("after settle: hour %d day %d, want 300", h, d)
	}
	if h, _ := used(t, s, "sandbox", later); h != 0 {
		t.Fatalf("the next hour was charged %d", h)
	}
	hourKey, dayKey := s.Keys("sandbox", spendNow)
	if ttl := rdb.PTTL(ctx, hourKey).Val(); ttl <= 30*time.Minute || ttl > 90*time.Minute {
		t.Errorf("hour counter TTL %s, want 30m + 1h grace", ttl)
	}
	if ttl := rdb.PTTL(ctx, dayKey).Val(); ttl <= 14*time.Hour || ttl > 14*time.Hour+30*time.Minute {
		t.Errorf("day counter TTL %s, want 13h30m + 1h grace", ttl)
	}
}

// A script whose reply was lost is run again by the caller (or by
// go-redis on a new connection): one request must be spent once.
func TestSpendScriptsRunTwiceForOneRequestSpendOnce(t *testing.T) {
	rdb := realRedis(t)
	s := NewSpend(rdb, "", 10_000, 0)
	ctx := ctxT(t)
	var r Reservation
	for i := 0; i < 2; i++ {
		var err error
		if r, err = s.Reserve(ctx, "sandbox", "req-twice", 800, spendNow); err != nil {
			t.Fatalf("Reserve #%d: %v", i+1, err)
		}
	}
	if h, d := used(t, s, "sandbox", spendNow); h != 800 || d != 800 {
		t.Fatalf("reserved twice: hour %d day %d, want 800", h, d)
	}
	for i := 0; i < 2; i++ {
		if err := s.Settle(ctx, r, 250); err != nil {
			t.Fatalf("Settle #%d: %v", i+1, err)
		}
	}
	if h, d := used(t, s, "sandbox", spendNow); h != 250 || d != 250 {
		t.Fatalf("settled twice: hour %d day %d, want 250", h, d)
	}
	// A reserve arriving after the settlement (a very late duplicate)
	// finds the request and charges nothing.
	if _, err := s.Reserve(ctx, "sandbox", "req-twice", 800, spendNow); err != nil {
		t.Fatal(err)
	}
	if h, _ := used(t, s, "sandbox", spendNow); h != 250 {
		t.Fatalf("late duplicate reserve charged: hour %d, want 250", h)
	}
}

func TestSpendConcurrentReservesNeverOverspend(t *testing.T) {
	rdb := realRedis(t)
	s := NewSpend(rdb, "", 1000, 0)
	ctx := ctxT(t)
	const n = 40
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Reserve(ctx, "sandbox", fmt.Sprintf("req-%d", i), 100, spendNow)
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		var ce *CapError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &ce):
			if ce.Window != "hour" || !ce.RetryAt.Equal(time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)) {
				t.Errorf("cap error %+v", ce)
			}
		default:
			t.Fatalf("Reserve: %v", err)
		}
	}
	if ok != 10 {
		t.Fatalf("%d of %d reservations of 100 fit a cap of 1000", ok, n)
	}
	if h, _ := used(t, s, "sandbox", spendNow); h != 1000 {
		t.Fatalf("hour counter %d, want 1000", h)
	}
}

func TestSpendRefusalMovesNothingAndNamesTheWindow(t *testing.T) {
	rdb := realRedis(t)
	s := NewSpend(rdb, "", 1000, 1500)
	ctx := ctxT(t)
	if _, err := s.Reserve(ctx, "sandbox", "a", 900, spendNow); err != nil {
		t.Fatal(err)
	}
	_, err := s.Reserve(ctx, "sandbox", "b", 200, spendNow)
	var ce *CapError
	if !errors.As(err, &ce) || !errors.Is(err, ErrSpendCap) || ce.Window != "hour" {
		t.Fatalf("over the hour: %v", err)
	}
	// The next hour has room, the day has 600 left.
	next := spendNow.Add(time.Hour)
	_, err = s.Reserve(ctx, "sandbox", "c", 700, next)
	if !errors.As(err, &ce) || ce.Window != "day" || !ce.RetryAt.Equal(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("over the day: %v", err)
	}
	if h, d := used(t, s, "sandbox", spendNow); h != 900 || d != 900 {
		t.Fatalf("refusals moved the counters: hour %d day %d", h, d)
	}
	if h, _ := used(t, s, "sandbox", next); h != 0 {
		t.Fatalf("refusal in the next hour counted %d", h)
	}
}

func TestSpendSettleAfterTheWindowExpiredCreatesNothing(t *testing.T) {
	rdb := realRedis(t)
	s := NewSpend(rdb, "", 10_000, 0)
	ctx := ctxT(t)
	r, err := s.Reserve(ctx, "sandbox", "slow", 1000, spendNow)
	if err != nil {
		t.Fatal(err)
	}
	hourKey, dayKey := s.Keys("sandbox", spendNow)
	rdb.Del(ctx, hourKey) // as if its TTL ran out
	if err := s.Settle(ctx, r, 10); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, hourKey).Val(); n != 0 {
		t.Fatal("settlement recreated an expired counter")
	}
	if v := rdb.Get(ctx, dayKey).Val(); v != "10" {
		t.Fatalf("day counter %q, want 10", v)
	}
}

func TestSpendRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	s := NewSpend(rdb, "", 10_000, 0)
	srv.Stop()
	ctx := ctxT(t)
	if _, err := s.Reserve(ctx, "sandbox", "x", 10, spendNow); !errors.Is(err, ErrSpendUnavailable) {
		t.Fatalf("Reserve with Redis down: %v", err)
	}
	if _, err := NewSpend(rdb, "bad{", 1, 1).Reserve(ctx, "sandbox", "x", 1, spendNow); !errors.Is(err, ErrInvalidSpend) {
		t.Fatalf("brace in prefix: %v", err)
	}
}

// Embedded mode runs on miniredis: the scripts must work there too.
func TestSpendOnMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := NewSpend(rdb, "", 1000, 0)
	ctx := ctxT(t)
	r, err := s.Reserve(ctx, "sandbox", "m", 900, spendNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Settle(ctx, r, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.Settle(ctx, r, 100); err != nil {
		t.Fatal(err)
	}
	if h, _ := used(t, s, "sandbox", spendNow); h != 100 {
		t.Fatalf("hour %d, want 100", h)
	}
}

// The writer reserves before the call and settles to the reported usage,
// refunds a refused call and charges an ambiguous one in full; at the cap
// it does not call the model at all.
func TestModelWriterSpend(t *testing.T) {
	rdb := realRedis(t)
	var status atomic.Int64 // the server's goroutines read it; a network round trip is no sync to -race
	status.Store(http.StatusOK)
	f := newFakeLLM(t, false, func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
		if st := int(status.Load()); st != http.StatusOK {
			http.Error(w, "{}", st)
			return
		}
		completion(w, goodAnswer, "stop", 420)
	})
	clock := spendNow
	c := modelConfig(f, func(c *Config) { c.Spend = SpendConfig{TokensPerHour: 3000} })
	w := newModelWriter(t, f, c, WithRedis(rdb), WithClock(func() time.Time { return clock }))
	s := w.spend
	ctx := ctxT(t)

	if p, err := w.Write(ctx, testRequest()); err != nil || p.Source != SourceModel {
		t.Fatalf("Write: %+v %v", p, err)
	}
	if h, _ := used(t, s, "sandbox", clock); h != 420 {
		t.Fatalf("after an answer: hour %d, want the reported 420", h)
	}
	for _, st := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadRequest} {
		status.Store(int64(st))
		if _, err := w.Write(ctx, testRequest()); err != nil {
			t.Fatal(err)
		}
		if h, _ := used(t, s, "sandbox", clock); h != 420 {
			t.Fatalf("after a %d: hour %d, want 420 (refused calls cost nothing)", st, h)
		}
	}
	status.Store(http.StatusBadGateway)
	if _, err := w.Write(ctx, testRequest()); err != nil {
		t.Fatal(err)
	}
	h, _ := used(t, s, "sandbox", clock)
	m, _ := w.prompt.build(testRequest(), w.profile)
	if reserve := w.maxTokens + estimateTokens(m); h != 420+reserve {
		t.Fatalf("after a 502: hour %d, want 420 + the reservation %d", h, reserve)
	}
	// Fill the hour; the next Write must not reach the server.
	if _, err := s.Reserve(ctx, "sandbox", "filler", 3000-h, clock); err != nil {
		t.Fatal(err)
	}
	before := len(f.requests())
	p, err := w.Write(ctx, testRequest())
	if err != nil || p.Source != SourceTemplate || p.Fallback != ResultSpendCap {
		t.Fatalf("at the cap: %+v %v, want the template", p, err)
	}
	if len(f.requests()) != before {
		t.Fatal("the model was called at the cap")
	}
	wait := newModelWriter(t, f, func() Config { c := c; c.OnError = OnErrorWait; return c }(), WithRedis(rdb), WithClock(func() time.Time { return clock }))
	_, err = wait.Write(ctx, testRequest())
	var we *WaitError
	if !errors.As(err, &we) || we.Result != ResultSpendCap || we.After != 30*time.Minute || !errors.Is(err, ErrSpendCap) {
		t.Fatalf("at the cap with on_error wait: %v, want a 30m wait for the next hour", err)
	}
}
