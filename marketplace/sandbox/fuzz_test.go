package sandbox

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/httpx/httpxtest"
)

// The committed corpus under testdata/fuzz/ replays on every `go test`; run
// `go test -fuzz FuzzDecodeBidAnswer ./marketplace/sandbox` to search further.

func FuzzDecodeBidAnswer(f *testing.F) {
	f.Add(201, "", []byte(validBidJSON))
	f.Add(200, "", []byte(validBidJSON))
	f.Add(409, "", []byte(`{"error":"already_bid","bid":{"id":"b-1","posting_id":"p-1","created_at":"2026-11-27T10:00:00Z"}}`))
	f.Add(429, "3", []byte(`{"error":"rate_limited"}`))
	f.Add(503, "", []byte(`{"error":"unavailable"}`))
	f.Add(504, "", []byte(``))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		pb, err := decodeBidAnswer("p-1", status, h, body)
		me := httpxtest.CheckClassified(t, err)
		if err == nil {
			if status != 200 && status != 201 {
				t.Fatalf("status %d decoded as a placed bid", status)
			}
			if pb.ID == "" || pb.PostingID != "p-1" || pb.CreatedAt.IsZero() {
				t.Fatalf("accepted an invalid bid %+v", pb)
			}
			return
		}
		if (status == 200 || status == 201 || status >= 500) && status != 503 && me.Class != marketplace.ErrAmbiguous {
			t.Fatalf("status %d: class %v; a bid the server may have stored must be ambiguous", status, me.Class)
		}
		if me.RetryAfter < 0 || me.RetryAfter > maxRetryAfter {
			t.Fatalf("RetryAfter %s from %q", me.RetryAfter, retryAfter)
		}
		if me.Existing != nil && (me.Existing.PostingID != "p-1" || me.Existing.ID == "") {
			t.Fatalf("Existing %+v", me.Existing)
		}
	})
}

func FuzzDecodePage(f *testing.F) {
	f.Add(200, "", 10, []byte(`{"postings":[`+validPostingJSON+`],"next_cursor":"c1"}`))
	f.Add(200, "c1", 10, []byte(`{"postings":[],"next_cursor":"c1"}`))
	f.Add(400, "zz", 10, []byte(`{"error":"bad_request","detail":"bad cursor"}`))
	f.Add(200, "", 1, []byte(`{"postings":[{"id":"p-1"}],"next_cursor":"c"}`))
	f.Fuzz(func(t *testing.T, status int, cursor string, limit int, body []byte) {
		page, err := decodePage("m", cursor, limit, status, http.Header{}, body)
		httpxtest.CheckClassified(t, err)
		if err != nil {
			if len(page.Postings) != 0 {
				t.Fatal("postings with an error")
			}
			return
		}
		if status != 200 || len(page.Postings) > max(limit, 0) {
			t.Fatalf("status %d limit %d accepted %d postings", status, limit, len(page.Postings))
		}
		if page.NextCursor == "" && (len(page.Postings) > 0 || cursor != "") {
			t.Fatal("accepted an empty cursor")
		}
		for _, p := range page.Postings {
			if p.MarketplaceID != "m" || !validID(p.ID) || p.PostedAt.IsZero() {
				t.Fatalf("accepted invalid posting %+v", p)
			}
		}
		// What the stream accepted, json.Unmarshal reads the same.
		if httpxtest.AmbiguousKeys(body) {
			return
		}
		var ref struct {
			Postings []struct {
				ID string `json:"id"`
			} `json:"postings"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("accepted what json.Unmarshal refuses: %v", err)
		}
		if ref.NextCursor != page.NextCursor || len(ref.Postings) != len(page.Postings) {
			t.Fatalf("stream read %d postings, cursor %q; json.Unmarshal %d, %q", len(page.Postings), page.NextCursor, len(ref.Postings), ref.NextCursor)
		}
		for i, p := range ref.Postings {
			if p.ID != page.Postings[i].ID {
				t.Fatalf("postings[%d]: stream %q, json.Unmarshal %q", i, page.Postings[i].ID, p.ID)
			}
		}
	})
}

func FuzzDecodeFindBid(f *testing.F) {
	f.Add(200, []byte(`{"bids":[]}`))
	f.Add(200, []byte(`{"bids":[{"id":"b-1","posting_id":"p-1","created_at":"2026-11-27T10:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		pb, found, err := decodeFindBid("p-1", status, http.Header{}, body)
		httpxtest.CheckClassified(t, err)
		if found && (err != nil || pb.PostingID != "p-1" || pb.ID == "") {
			t.Fatalf("found %+v with err %v", pb, err)
		}
		if err != nil || httpxtest.AmbiguousKeys(body) {
			return
		}
		// What the stream accepted, json.Unmarshal reads the same.
		var ref struct {
			Bids []wireBid `json:"bids"`
		}
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("accepted what json.Unmarshal refuses: %v", err)
		}
		if found != (len(ref.Bids) > 0) || (found && ref.Bids[0].ID != pb.ID) {
			t.Fatalf("stream found=%v %q; json.Unmarshal read %d bids", found, pb.ID, len(ref.Bids))
		}
	})
}
