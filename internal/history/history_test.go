package history

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bidder/bidder/internal/redistest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestCountsSeriesTotalsAndLatest(t *testing.T) {
	s := redistest.Start(t, redistest.WithAppendOnly("always"))
	rdb := s.Client(t)
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 12, 1, 10, 58, 30, 0, time.UTC)}
	r := NewRecorder(rdb, WithClock(c.now))
	r.Decided("sbx", Decision{Posting: "p1", State: "placed", Amount: 100, Currency: "USD", Title: "Go job"})
	r.Decided("sbx", Decision{Posting: "p2", State: "skipped", Rule: "keywords"})
	r.Count("sbx", "dup:lock", 3)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Minute) // the next hour: another key
	r.Decided("sbx", Decision{Posting: "p3", State: "placed", Amount: 50, Currency: "USD"})
	// A flush that fails keeps what it could not write.
	s.Kill()
	if err := r.Flush(ctx); err == nil {
		t.Fatal("flush with Redis down: no error")
	}
	s.Restart()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	rd := NewReader(rdb)
	series, err := rd.Series(ctx, "sbx", c.now().Add(-time.Hour), c.now())
	if err != nil {
		t.Fatal(err)
	}
	if ps := series["placed"]; len(ps) != 2 || ps[0].Count != 1 || ps[1].Count != 1 ||
		!ps[0].Minute.Equal(time.Date(2026, 12, 1, 10, 58, 0, 0, time.UTC)) || !ps[1].Minute.Equal(time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)) {
		t.Fatalf("placed series %+v", ps)
	}
	if ps := series["skipped:keywords"]; len(ps) != 1 || ps[0].Count != 1 {
		t.Fatalf("skipped series %+v", ps)
	}
	if ps := series["dup:lock"]; len(ps) != 1 || ps[0].Count != 3 {
		t.Fatalf("dup series %+v", ps)
	}
	tot, err := rd.Totals(ctx, "sbx")
	if err != nil || tot["placed"] != 2 || tot["skipped:keywords"] != 1 || tot["dup:lock"] != 3 {
		t.Fatalf("totals %v %v", tot, err)
	}
	latest, err := rd.Recent(ctx, "sbx", 10)
	if err != nil || len(latest) != 3 || latest[0].Posting != "p3" || latest[2].Posting != "p1" || latest[2].Title != "Go job" {
		t.Fatalf("latest %+v %v", latest, err)
	}
	for _, h := range []int64{c.now().Unix() / 3600, c.now().Unix()/3600 - 1} {
		if ttl := rdb.TTL(ctx, hourKey(DefaultPrefix, "sbx", h)).Val(); ttl <= 48*time.Hour || ttl > Retention {
			t.Fatalf("hour key TTL %s, want about 49h", ttl)
		}
	}
	// What Redis holds that is not ours is skipped, not a panic.
	rdb.HSet(ctx, hourKey(DefaultPrefix, "sbx", c.now().Unix()/3600), "junk", "x", "9|placed", "many")
	if _, err := rd.Series(ctx, "sbx", c.now().Add(-time.Hour), c.now()); err != nil {
		t.Fatal(err)
	}
}

func TestRunFlushesAndFlushesAgainOnStop(t *testing.T) {
	s := redistest.Start(t)
	rdb := s.Client(t)
	r := NewRecorder(rdb, WithFlushEvery(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	r.Count("sbx", "parked", 1)
	cancel()
	<-done
	if tot, _ := NewReader(rdb).Totals(context.Background(), "sbx"); tot["parked"] != 1 {
		t.Fatalf("totals after stop %v", tot)
	}
}

// TestSumByMinuteAndByDay: reports add up the last 48 hours by the minute
// and older ranges by whole days, which outlive the hourly keys.
func TestSumByMinuteAndByDay(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	r := NewRecorder(rdb, WithClock(c.now))
	for i := 0; i < 5; i++ { // five days, two placed and one skip each
		r.Count("sbx", "placed", 2)
		r.Count("sbx", "skipped:keywords", 1)
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		c.add(24 * time.Hour)
	}
	rd := NewReader(rdb)
	rd.now = c.now
	got, err := rd.Sum(ctx, "sbx", c.now().Add(-7*24*time.Hour), c.now())
	if err != nil || got["placed"] != 10 || got["skipped:keywords"] != 5 {
		t.Fatalf("7 days: %v %v", got, err)
	}
	// Within 48 hours: by the minute, so only what falls inside counts.
	got, err = rd.Sum(ctx, "sbx", c.now().Add(-36*time.Hour), c.now())
	if err != nil || got["placed"] != 2 {
		t.Fatalf("36 hours: %v %v", got, err)
	}
	if ttl := rdb.TTL(ctx, dayKey(DefaultPrefix, "sbx", c.now().Add(-24*time.Hour).Unix()/86400)).Val(); ttl <= 91*24*time.Hour {
		t.Fatalf("day key TTL %s, want about 92 days", ttl)
	}
}
