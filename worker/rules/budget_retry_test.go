package rules

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
)

// TestBudgetTakeWithLostReplySpendsOnce: the take script ran, its reply was
// lost, go-redis ran it again. One posting's bid must cost one unit.
func TestBudgetTakeWithLostReplySpendsOnce(t *testing.T) {
	s := redistest.Start(t)
	d := redistest.NewReplyDropper(t, s)
	rdb := redis.NewClient(&redis.Options{Addr: d.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	b := NewBudget(rdb, "", 10, 0)
	ctx := ctxT(t)
	if ok, _, err := b.Take(ctx, "warm", "p0", budgetNow); !ok || err != nil { // script cached
		t.Fatal(ok, err)
	}
	hourKey, _ := b.Keys("sandbox", budgetNow)
	d.DropReplies(hourKey, 1)
	if ok, _, err := b.Take(ctx, "sandbox", "p1", budgetNow); !ok || err != nil {
		t.Fatalf("take: %v %v", ok, err)
	}
	if d.Dropped() != 1 {
		t.Fatalf("dropped %d replies, want 1", d.Dropped())
	}
	if n, _ := s.Client(t).SCard(ctx, hourKey).Result(); n != 1 {
		t.Fatalf("one take spent %d bids of the hour", n)
	}
}
