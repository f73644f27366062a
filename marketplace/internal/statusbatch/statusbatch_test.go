package statusbatch

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace"
)

func TestListStopsBeforeTheOneTooMany(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`[1,2,{"never":"decoded"}]`))
	var got []int
	err := List(dec, 2, func() error {
		var v int
		if err := dec.Decode(&v); err != nil {
			return err
		}
		got = append(got, v)
		return nil
	})
	if !errors.Is(err, ErrTooMany) || len(got) != 2 {
		t.Fatalf("err %v, decoded %v; want ErrTooMany after 2", err, got)
	}
	for body, want := range map[string]error{`null`: nil, `[]`: nil, `{}`: ErrShape, `"x"`: ErrShape} {
		err := List(json.NewDecoder(strings.NewReader(body)), 2, func() error { return Skip(dec) })
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("List(%s) = %v, want %v", body, err, want)
		}
	}
}

func TestObjectLimitsMembersAndSkips(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`{"a":[1,{"b":2}],"c":null} `))
	var keys []string
	err := Object(dec, 2, func(k string) error { keys = append(keys, k); return Skip(dec) })
	if err != nil || strings.Join(keys, ",") != "a,c" || End(dec) != nil {
		t.Fatalf("keys %v, err %v", keys, err)
	}
	dec = json.NewDecoder(strings.NewReader(`{"a":1,"b":2,"c":3}`))
	if err := Object(dec, 2, func(string) error { return Skip(dec) }); !errors.Is(err, ErrTooMany) {
		t.Fatalf("3 members under a limit of 2: %v", err)
	}
	dec = json.NewDecoder(strings.NewReader(`{"a":1} {}`))
	if err := Object(dec, 2, func(string) error { return Skip(dec) }); err != nil || !errors.Is(End(dec), ErrShape) {
		t.Fatal("data after the document must fail End")
	}
	dec = json.NewDecoder(strings.NewReader(`{"a":`))
	if err := Object(dec, 2, func(string) error { return Skip(dec) }); err == nil {
		t.Fatal("a cut document must fail")
	}
}

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
		got[1].Outcome != marketplace.OutcomeAwarded || got[1].PostingID != "p2" || got[1].Text != "won?"+strings.Repeat("x", 60)+"..." {
		t.Fatalf("result %+v", got)
	}
}
