package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/ledger"
)

// TestOutcomeIsRecordedApartFromTheDecision (issue 17, item 2): a placed
// bid enters the tracker's index in the script that records it; every
// outcome change is stored with its time and logged; the posting stays
// placed; a decided outcome ends polling and is not undone by a lagging
// "pending".
func TestOutcomeIsRecordedApartFromTheDecision(t *testing.T) {
	led, locks, rdb := setup(t, ledger.WithTracking(time.Hour, "m"))
	ctx := context.Background()
	_, l := claim(t, led, locks, "p", bid)
	if err := settle(ctx, led, l, "p", placed); err != nil {
		t.Fatal(err)
	}
	score, err := rdb.ZScore(ctx, led.PlacedKey("m", "p"), "p").Result()
	if err != nil {
		t.Fatalf("placed bid not tracked: %v", err)
	}
	if due := time.UnixMilli(int64(score)); time.Until(due) < 50*time.Minute || time.Until(due) > time.Hour+time.Minute {
		t.Fatalf("first poll at %s, want in about 1h", due)
	}
	if got, err := led.DueBids(ctx, "m", 10, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("due before its time: %+v, %v", got, err)
	}
	rdb.ZAdd(ctx, led.PlacedKey("m", "p"), redisZ(0, "p"))
	got, err := led.DueBids(ctx, "m", 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].BidID != "b-1" || got[0].Outcome != ledger.BidPending || got[0].PlacedAt.IsZero() {
		t.Fatalf("due bids %+v, %v", got, err)
	}
	if again, _ := led.DueBids(ctx, "m", 10, time.Minute); len(again) != 0 {
		t.Fatalf("a taken bid was handed out twice: %+v", again)
	}

	// Still pending: nothing changes, polled again later.
	ch, err := led.RecordOutcome(ctx, "m", ledger.Observed{PostingID: "p", BidID: "b-1", Outcome: ledger.BidPending, Next: 2 * time.Hour, By: "tracker"})
	if err != nil || ch.Changed || ch.From != ledger.BidPending {
		t.Fatalf("pending: %+v %v", ch, err)
	}
	// Awarded, at the marketplace's time.
	since := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	ch, err = led.RecordOutcome(ctx, "m", ledger.Observed{PostingID: "p", BidID: "b-1", Outcome: ledger.BidAwarded, Since: since, Next: time.Hour, By: "tracker", Text: "awarded"})
	if err != nil || !ch.Changed || ch.From != ledger.BidPending {
		t.Fatalf("awarded: %+v %v", ch, err)
	}
	rec, _ := led.Get(ctx, "m", "p")
	if rec.State != ledger.StatePlaced || rec.Outcome != ledger.BidAwarded || !rec.OutcomeAt.Equal(since) || rec.BidID != "b-1" {
		t.Fatalf("record after award %+v", rec)
	}
	if n := rdb.ZCard(ctx, led.PlacedKey("m", "p")).Val(); n != 0 {
		t.Fatal("a decided bid is still polled")
	}
	// A lagging answer does not undo it.
	if ch, err := led.RecordOutcome(ctx, "m", ledger.Observed{PostingID: "p", BidID: "b-1", Outcome: ledger.BidPending, Next: time.Hour, By: "tracker"}); err != nil || ch.Changed {
		t.Fatalf("pending after awarded: %+v %v", ch, err)
	}
	if rec, _ := led.Get(ctx, "m", "p"); rec.Outcome != ledger.BidAwarded {
		t.Fatalf("outcome %q after a lagging pending", rec.Outcome)
	}
	// A retract after the award is a change.
	if ch, err := led.RecordOutcome(ctx, "m", ledger.Observed{PostingID: "p", BidID: "b-1", Outcome: ledger.BidRetracted, By: "ops"}); err != nil || !ch.Changed || ch.From != ledger.BidAwarded {
		t.Fatalf("retract: %+v %v", ch, err)
	}
	log, err := led.Audit(ctx, "m", "p")
	if err != nil || len(log) != 2 || log[0].Outcome != ledger.BidAwarded || !log[0].Since.Equal(since) || log[0].By != "tracker" ||
		log[0].Why != "awarded" || log[1].Outcome != ledger.BidRetracted || log[1].By != "ops" {
		t.Fatalf("audit %+v, %v", log, err)
	}

	// The pipeline never bids on it again.
	if c, _ := claim(t, led, locks, "p", bid); c.Outcome != ledger.Decided {
		t.Fatalf("claim of a retracted posting: %+v", c)
	}
}

func TestOutcomeOfAnotherBidIsRefused(t *testing.T) {
	led, locks, rdb := setup(t, ledger.WithTracking(time.Millisecond, "m"))
	ctx := context.Background()
	_, l := claim(t, led, locks, "p", bid)
	if err := settle(ctx, led, l, "p", placed); err != nil {
		t.Fatal(err)
	}
	_, err := led.RecordOutcome(ctx, "m", ledger.Observed{PostingID: "p", BidID: "b-other", Outcome: ledger.BidAwarded, By: "tracker"})
	if !errors.Is(err, ledger.ErrNotPlaced) {
		t.Fatalf("outcome for another bid: %v", err)
	}
	if _, err := led.RecordOutcome(ctx, "m", ledger.Observed{PostingID: "nothing", BidID: "b-1", Outcome: ledger.BidAwarded}); !errors.Is(err, ledger.ErrNotPlaced) {
		t.Fatalf("outcome without a record: %v", err)
	}
	if _, err := led.RecordOutcome(ctx, "m", ledger.Observed{PostingID: "p", BidID: "b-1", Outcome: "won"}); err == nil {
		t.Fatal("an unknown outcome was accepted")
	}
	if n := rdb.ZCard(ctx, led.PlacedKey("m", "p")).Val(); n != 0 {
		t.Fatal("a stale index entry stayed")
	}
	// A record that expired: DueBids drops it from the index.
	_, l = claim(t, led, locks, "q", bid)
	if err := settle(ctx, led, l, "q", placed); err != nil {
		t.Fatal(err)
	}
	rdb.Del(ctx, led.Key("m", "q"))
	rdb.ZAdd(ctx, led.PlacedKey("m", "q"), redisZ(0, "q"))
	if got, err := led.DueBids(ctx, "m", 10, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("due bids over an expired record: %+v, %v", got, err)
	}
	if n := rdb.ZCard(ctx, led.PlacedKey("m", "q")).Val(); n != 0 {
		t.Fatal("an expired record stayed in the index")
	}
}

func TestPlacedIsNotTrackedByDefault(t *testing.T) {
	led, locks, rdb := setup(t, ledger.WithTracking(time.Minute, "other"))
	ctx := context.Background()
	_, l := claim(t, led, locks, "p", bid)
	if err := settle(ctx, led, l, "p", placed); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, led.PlacedKey("m", "p")).Val(); n != 0 {
		t.Fatal("tracked with tracking off")
	}
	if rec, _ := led.Get(ctx, "m", "p"); rec.Outcome != ledger.BidPending {
		t.Fatalf("a placed record's outcome reads %q, want pending", rec.Outcome)
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

// TestBidsIndex: every placed bid is listed by time with what reports need;
// entries older than the retention are trimmed as bids are added.
func TestBidsIndex(t *testing.T) {
	led, locks, rdb := setup(t, ledger.WithRetention(time.Hour))
	ctx := context.Background()
	rdb.ZAdd(ctx, led.BidsKey("m", "old"), redis.Z{Score: float64(time.Now().Add(-2 * time.Hour).UnixMilli()), Member: "old"})
	for _, id := range []string{"a", "b"} {
		_, l := claim(t, led, locks, id, bid)
		o := placed
		o.Dims = "go|fixed 0-100|US|fixed/fixed"
		if err := settle(ctx, led, l, id, o); err != nil {
			t.Fatal(err)
		}
	}
	claim(t, led, locks, "s", skip)
	rows, err := led.Bids(ctx, "m", time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil || len(rows) != 2 || rows[0].PostingID != "a" || rows[1].PostingID != "b" || rows[0].BidID != "b-1" ||
		rows[0].Dims != "go|fixed 0-100|US|fixed/fixed" || rows[0].Outcome != ledger.BidPending || rows[0].Amount != 123.45 {
		t.Fatalf("bids %+v, %v", rows, err)
	}
	if n := rdb.ZScore(ctx, led.BidsKey("m", "old"), "old").Err(); n != redis.Nil {
		t.Fatal("an entry older than the retention was kept")
	}
	if rows, _ := led.Bids(ctx, "m", time.Now().Add(time.Minute), time.Now().Add(time.Hour)); len(rows) != 0 {
		t.Fatalf("bids outside the window: %+v", rows)
	}
}
