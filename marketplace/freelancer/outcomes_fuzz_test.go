package freelancer

import (
	"net/http"
	"testing"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/statusbatch"
)

// Committed corpora under testdata/fuzz/ replay on every `go test`; run
// `go test -fuzz FuzzDecodeStatuses ./marketplace/freelancer` (or
// FuzzDecodeRetractAnswer) to search further.

var fuzzAsked = []marketplace.PlacedBid{{ID: "7", PostingID: "12"}, {ID: "8", PostingID: "12"}}

func FuzzDecodeStatuses(f *testing.F) {
	f.Add(200, []byte(`{"status":"success","result":{"bids":[{"id":7,"project_id":12,"bidder_id":4242,"award_status":"pending","time_awarded":1767225600},{"id":8,"project_id":12,"retracted":true}]}}`))
	f.Add(200, []byte(`{"status":"success","result":{"bids":[]}}`))
	f.Add(401, []byte(`{"status":"error","error_code":"NOT_AUTHENTICATED"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		got, err := decodeStatuses(fuzzAsked, testSelfID, status, http.Header{}, body, fuzzNow)
		checkClassified(t, err)
		if err != nil {
			if got != nil {
				t.Fatal("statuses with an error")
			}
			return
		}
		if status != 200 || len(got) != len(fuzzAsked) {
			t.Fatalf("status %d: %d statuses", status, len(got))
		}
		for i, st := range got {
			if st.BidID != fuzzAsked[i].ID || st.PostingID != "12" || !st.Outcome.Valid() || len(st.Text) > statusbatch.MaxText+3 || !textsafe.Clean(st.Text) {
				t.Fatalf("status %d: %+v", i, st)
			}
			if !st.ChangedAt.IsZero() && (st.ChangedAt.Unix() <= 0 || st.ChangedAt.Location().String() != "UTC") {
				t.Fatalf("changed at %v", st.ChangedAt)
			}
		}
	})
}

func FuzzDecodeRetractAnswer(f *testing.F) {
	f.Add(200, "", []byte(`{"status":"success"}`))
	f.Add(404, "", []byte(`{"status":"error","error_code":"ProjectExceptionCodes.BID_NOT_FOUND"}`))
	f.Add(429, "3", []byte(`{"status":"error","error_code":"TOO_MANY_REQUESTS"}`))
	f.Add(502, "", []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		err := decodeRetractAnswer(status, h, body, fuzzNow)
		me := checkClassified(t, err)
		if err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("status %d taken as retracted", status)
			}
			return
		}
		refusal := status >= 400 && status <= 499
		if !refusal && me.Class != marketplace.ErrAmbiguous {
			t.Fatalf("status %d: class %v; a retract that may have happened must be ambiguous", status, me.Class)
		}
		if refusal && me.Class == marketplace.ErrAmbiguous {
			t.Fatalf("status %d: a refusal reported as ambiguous", status)
		}
	})
}
