package proposal

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/lock"
)

// On Redis Cluster the spend scripts touch three keys and must find them
// in one slot (else CROSSSLOT), and a posting's proposal must sit in the
// slot of its lock, so that the handler's scripts can see both.
func TestClusterSpendAndStore(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	t.Cleanup(func() { cc.Close() })
	ctx := ctxT(t)

	s := NewSpend(cc, "", 10_000, 20_000)
	for _, mp := range []string{"sandbox", "freelancer", "upwork"} {
		r, err := s.Reserve(ctx, mp, "req-1", 500, spendNow)
		if err != nil {
			t.Fatalf("Reserve on %s: %v", mp, err)
		}
		if err := s.Settle(ctx, r, 120); err != nil {
			t.Fatalf("Settle on %s: %v", mp, err)
		}
		if h, d, err := s.Used(ctx, mp, spendNow); err != nil || h != 120 || d != 120 {
			t.Fatalf("Used on %s: %d %d %v", mp, h, d, err)
		}
	}

	st := NewStore(cc, WithHashTags(true))
	p, err := st.GetOrCreate(ctx, NewTemplateWriter(), testRequest())
	if err != nil || p.Text != testRequest().Template {
		t.Fatalf("GetOrCreate: %+v %v", p, err)
	}
	slot := func(key string) int64 { return cc.ClusterKeySlot(ctx, key).Val() }
	if a, b := slot(st.Key("sandbox", "p-42")), slot((lock.Keys{Prefix: "bid_lock", HashTags: true}).Lock("sandbox", "p-42")); a != b {
		t.Fatalf("proposal in slot %d, lock in slot %d", a, b)
	}
}
