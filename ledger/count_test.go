package ledger_test

import (
	"context"
	"testing"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
)

// TestOpenCount: undecided postings are counted until a decision or a park
// takes them out of the open index (a park into the parked one), with and
// without hash tags (one index per Cluster slot).
func TestOpenCount(t *testing.T) {
	for _, tags := range []bool{false, true} {
		led, _, rdb := setup(t, ledger.WithHashTags(tags))
		locks := lock.NewManager(rdb, lock.WithHashTags(tags))
		ctx := context.Background()
		var found []ledger.Found
		for _, id := range []string{"a", "b", "c", "d"} {
			found = append(found, ledger.Found{PostingID: id, Payload: []byte(`{"v":1}`)})
		}
		if _, err := led.Discover(ctx, "m", found); err != nil {
			t.Fatal(err)
		}
		if n, err := led.OpenCount(ctx, "m"); err != nil || n != 4 {
			t.Fatalf("hash tags %v: %d undecided, %v; want 4", tags, n, err)
		}
		a, err := locks.Prepare("m", "a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := led.Claim(ctx, a, "m", "a", skip); err != nil {
			t.Fatal(err)
		}
		k := locks.Keys()
		if err := led.Park(ctx, k.Lock("m", "b"), k.Fence("m", "b"), "", "m", "b", "attempts_exhausted", "x"); err != nil {
			t.Fatal(err)
		}
		if n, err := led.OpenCount(ctx, "m"); err != nil || n != 2 {
			t.Fatalf("hash tags %v: %d undecided after a skip and a park, %v; want 2", tags, n, err)
		}
		if n, err := led.ParkedCount(ctx, "m"); err != nil || n != 1 {
			t.Fatalf("hash tags %v: %d parked, %v; want 1", tags, n, err)
		}
		if n, err := led.OpenCount(ctx, "other"); err != nil || n != 0 {
			t.Fatalf("hash tags %v: another marketplace counts %d, %v", tags, n, err)
		}
	}
}
