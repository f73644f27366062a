package ops

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/worker"
)

// TestResumeAllByReason: "resume all of a reason" (the CLI's --all
// --reason, the status page's per-reason button) brings back exactly the
// postings parked for it, each undecided again with its bid task
// enqueued; the others stay parked.
func TestResumeAllByReason(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	led := ledger.New(rdb)
	keys := lock.NewManager(rdb).Keys()
	parked := map[string]string{"p1": "marketplace_transient", "p2": "redis", "p3": "marketplace_transient"}
	for id, rule := range parked {
		b, _ := json.Marshal(worker.BidPayload{Version: 1, Posting: marketplace.Posting{MarketplaceID: "m", ID: id, Title: "t " + id}})
		if _, err := led.Discover(ctx, "m", []ledger.Found{{PostingID: id, Payload: b}}); err != nil {
			t.Fatal(err)
		}
		if err := led.Park(ctx, keys.Lock("m", id), keys.Fence("m", id), "", "m", id, rule, "ran out"); err != nil {
			t.Fatal(err)
		}
	}
	r := NewResumer(rdb, led, true, time.Hour)
	var seen []string
	n, err := r.ResumeAll(ctx, "m", "marketplace_transient", func(id string) { seen = append(seen, id) })
	if err != nil || n != 2 || len(seen) != 2 {
		t.Fatalf("resumed %d (%v), %v; want p1 and p3", n, seen, err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for id, rule := range parked {
		rec, err := led.Get(ctx, "m", id)
		if err != nil {
			t.Fatal(err)
		}
		_, terr := insp.GetTaskInfo(worker.MarketplaceQueue("m"), worker.BidTaskID("m", id))
		if rule == "redis" {
			if rec.State != ledger.StateParked || !errors.Is(terr, asynq.ErrTaskNotFound) && !errors.Is(terr, asynq.ErrQueueNotFound) {
				t.Errorf("%s (other reason): state %q, task lookup %v; want still parked, no task", id, rec.State, terr)
			}
			continue
		}
		if rec.State != ledger.StateNone || terr != nil {
			t.Errorf("%s: state %q, task lookup %v; want undecided with its task", id, rec.State, terr)
		}
	}
	if n, err := r.ResumeAll(ctx, "m", "marketplace_transient", nil); err != nil || n != 0 {
		t.Fatalf("second resume of the reason: %d, %v; want 0", n, err)
	}
}
