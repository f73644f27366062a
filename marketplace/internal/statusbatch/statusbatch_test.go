package statusbatch

import (
	"errors"
	"strings"
	"testing"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
)

func TestCheckAndCollector(t *testing.T) {
	ok := func(s string) bool { return !strings.ContainsAny(s, "\n") }
	bids := []marketplace.PlacedBid{{ID: "1", PostingID: "p1"}, {ID: "2", PostingID: "p2"}}
	if err := Check("op", bids, 2, ok); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]marketplace.PlacedBid{
		"too many": {{ID: "1"}, {ID: "2"}, {ID: "3"}},
		"empty":    {{ID: ""}},
		"refused":  {{ID: "a\nb"}},
		"repeated": {{ID: "1"}, {ID: "1"}},
	} {
		var me *marketplace.Error
		if err := Check("op", bad, 2, ok); !errors.As(err, &me) || me.Class != marketplace.ErrPermanent || me.Reason != "invalid_request" {
			t.Errorf("%s: %v, want a permanent invalid_request", name, err)
		}
	}
	c := NewCollector(bids)
	if err := c.Add(marketplace.BidStatus{BidID: "2", Outcome: marketplace.OutcomeAwarded, Text: "won\x1b" + strings.Repeat("x", 100)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(marketplace.BidStatus{BidID: "2"}); !errors.Is(err, ErrRepeated) {
		t.Fatalf("second entry for a bid: %v", err)
	}
	if err := c.Add(marketplace.BidStatus{BidID: "9"}); err == nil {
		t.Fatal("entry for a bid not asked about accepted")
	}
	got := c.Result()
	if got[0].Outcome != marketplace.OutcomeUnknown || got[0].BidID != "1" || got[0].PostingID != "p1" ||
		got[1].Outcome != marketplace.OutcomeAwarded || got[1].PostingID != "p2" ||
		len(got[1].Text) > MaxText+len("...") || !textsafe.Clean(got[1].Text) || !strings.HasPrefix(got[1].Text, "won\uFFFDxx") || !strings.HasSuffix(got[1].Text, "x...") {
		t.Fatalf("result %+v", got)
	}
}
