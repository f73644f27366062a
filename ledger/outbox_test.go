package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
)

func outbox(t *testing.T, rdb *redis.Client, led *ledger.Ledger, id string) []ledger.Event {
	t.Helper()
	raw, err := rdb.LRange(context.Background(), led.OutboxKey("m", id), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []ledger.Event
	for _, r := range raw {
		e, err := ledger.ParseEvent([]byte(r))
		if err != nil {
			t.Fatalf("outbox entry %q: %v", r, err)
		}
		if e.PostingID == id { // one outbox per marketplace without hash tags
			out = append(out, e)
		}
	}
	return out
}

// TestOutboxEventsAreWrittenByTheirChange (issue 16, item 3): each event
// is in the outbox exactly when the ledger change it reports happened, and
// a script run twice (its reply lost) writes it once.
func TestOutboxEventsAreWrittenByTheirChange(t *testing.T) {
	s := redistest.Start(t)
	d := redistest.NewReplyDropper(t, s)
	rdb := redis.NewClient(&redis.Options{Addr: d.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	admin := s.Client(t)
	led := ledger.New(rdb, ledger.WithNotifications(true))
	locks := lock.NewManager(rdb, lock.WithTTL(time.Minute))
	ctx := context.Background()

	// A skip is no event.
	claim(t, led, locks, "skip", skip)
	if ev := outbox(t, admin, led, "skip"); len(ev) != 0 {
		t.Fatalf("a skip wrote %+v", ev)
	}

	// Placed, with the settle's reply lost and the script run again: one
	// event, with the bid.
	_, l := claim(t, led, locks, "p", bid)
	if ev := outbox(t, admin, led, "p"); len(ev) != 0 {
		t.Fatalf("an intent wrote %+v", ev)
	}
	d.DropReplies(l.Holder(), 1)
	if err := settle(ctx, led, l, "p", placed); err != nil {
		t.Fatal(err)
	}
	if d.Dropped() == 0 {
		t.Fatal("no reply was dropped")
	}
	d.DropReplies("", 0)
	ev := outbox(t, admin, led, "p")
	if len(ev) != 1 {
		t.Fatalf("placed: %d events, want 1: %+v", len(ev), ev)
	}
	e := ev[0]
	if e.ID != "bid_placed:m:p" || e.Kind != ledger.EventBidPlaced || e.Marketplace != "m" || e.PostingID != "p" ||
		e.BidID != "b-1" || e.Amount != "123.45" || e.Currency != "USD" || time.Since(e.At()) > time.Minute {
		t.Fatalf("placed event %+v", e)
	}

	// Review: amount, deadline and the rule's reason.
	until := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	rv := ledger.Decision{State: ledger.StateReview, Amount: 900, Currency: "EUR", Proposal: "hello",
		Rule: "review", Reason: "amount above 500", ReviewUntil: until}
	if c, _ := claim(t, led, locks, "r", rv); c.Outcome != ledger.InReview {
		t.Fatalf("review claim: %+v", c)
	}
	claim(t, led, locks, "r", bid) // claimed again while in review: no second event
	ev = outbox(t, admin, led, "r")
	if len(ev) != 1 || ev[0].ID != "review_needed:m:r" || ev[0].Amount != "900" || ev[0].Currency != "EUR" ||
		ev[0].UntilMs != until.UnixMilli() || ev[0].Reason != "amount above 500" {
		t.Fatalf("review events %+v", ev)
	}

	// Parked with its intent: says so.
	_, l = claim(t, led, locks, "k", bid)
	if err := led.Park(ctx, l.Key(), l.FenceKey(), l.Holder(), "m", "k", "attempts_exhausted", "find bid: 503"); err != nil {
		t.Fatal(err)
	}
	l.MarkReleased()
	if err := led.Park(ctx, l.Key(), l.FenceKey(), "", "m", "k", "attempts_exhausted", "again"); err != nil {
		t.Fatal(err) // parking a parked posting is a no-op
	}
	ev = outbox(t, admin, led, "k")
	if len(ev) != 1 || ev[0].Kind != ledger.EventPostingParked || ev[0].Rule != "attempts_exhausted" || !ev[0].HeldIntent {
		t.Fatalf("park events %+v", ev)
	}
}

func TestOutboxIsOffByDefault(t *testing.T) {
	led, locks, rdb := setup(t)
	ctx := context.Background()
	_, l := claim(t, led, locks, "p", bid)
	if err := settle(ctx, led, l, "p", placed); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, led.OutboxKey("m", "p")).Val(); n != 0 {
		t.Fatal("an outbox was written with notifications off")
	}
}

func TestParseEventRefusesJunk(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"id":"x"}`, `{"id":"x","event":"bid_placed","marketplace":"m"}`, `{"at":"soon"}`} {
		if _, err := ledger.ParseEvent([]byte(in)); err == nil {
			t.Errorf("ParseEvent(%q) accepted", in)
		}
	}
}

// With hash tags the outbox is in the record's Cluster slot (the scripts
// write both), and OutboxKeys lists it.
func TestOutboxKeyIsInTheRecordsSlot(t *testing.T) {
	led := ledger.New(nil, ledger.WithHashTags(true))
	for _, id := range []string{"p", "12345", "x:y"} {
		k := led.OutboxKey("m", id)
		if lock.KeySlot(k) != lock.KeySlot(led.Key("m", id)) {
			t.Fatalf("%s: outbox %s in slot %d, record in %d", id, k, lock.KeySlot(k), lock.KeySlot(led.Key("m", id)))
		}
		if keys := led.OutboxKeys("m"); keys[lock.KeySlot(k)] != k {
			t.Fatalf("OutboxKeys[%d] = %s, want %s", lock.KeySlot(k), keys[lock.KeySlot(k)], k)
		}
	}
}

// TestBudgetSpentOncePerWindow: however many postings meet a spent
// window, its event is written once; the next window writes another; off,
// nothing.
func TestBudgetSpentOncePerWindow(t *testing.T) {
	for _, tags := range []bool{false, true} {
		led, _, rdb := setup(t, ledger.WithNotifications(true), ledger.WithHashTags(tags))
		ctx := context.Background()
		until := time.Now().Add(time.Hour).Truncate(time.Hour)
		for range 3 {
			if err := led.NotifyBudgetSpent(ctx, "m", until); err != nil {
				t.Fatal(err)
			}
		}
		if err := led.NotifyBudgetSpent(ctx, "m", until.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		raw, err := rdb.LRange(ctx, led.OutboxKey("m", ""), 0, -1).Result()
		if err != nil || len(raw) != 2 {
			t.Fatalf("hash tags %v: outbox %q, %v; want 2 events", tags, raw, err)
		}
		e, err := ledger.ParseEvent([]byte(raw[0]))
		if err != nil || e.Kind != ledger.EventBudgetSpent || e.Marketplace != "m" || e.PostingID != "" ||
			e.UntilMs != until.UnixMilli() || e.ID != fmt.Sprintf("budget_spent:m:%d", until.Unix()) || time.Since(e.At()) > time.Minute {
			t.Fatalf("event %+v, %v", e, err)
		}
		if !slices.Contains(led.OutboxKeys("m"), led.OutboxKey("m", "")) {
			t.Fatal("the budget event's outbox is not one the sweeper reads")
		}
	}
	led, _, rdb := setup(t)
	if err := led.NotifyBudgetSpent(context.Background(), "m", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(context.Background(), led.OutboxKey("m", "")).Val(); n != 0 {
		t.Fatal("a budget event with notifications off")
	}
}
