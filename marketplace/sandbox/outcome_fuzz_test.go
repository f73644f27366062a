package sandbox

import (
	"net/http"
	"testing"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/httpx/httpxtest"
	"github.com/bidder/bidder/marketplace/internal/statusbatch"
)

// The committed corpora under testdata/fuzz/ replay on every `go test`; run
// `go test -fuzz FuzzDecodeStatuses ./marketplace/sandbox` (or
// FuzzDecodeRetractAnswer) to search further.

func FuzzDecodeStatuses(f *testing.F) {
	f.Add(200, []byte(statusJSON(entry1, entry2)))
	f.Add(200, []byte(statusJSON(entry1, entry1)))
	f.Add(200, []byte(`{"statuses":null}`))
	f.Add(404, []byte(`{"error":"not_found"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		got, err := decodeStatuses(askedBids, status, http.Header{}, body)
		httpxtest.CheckClassified(t, err)
		if err != nil {
			if got != nil {
				t.Fatal("statuses with an error")
			}
			return
		}
		if status != 200 || len(got) != len(askedBids) {
			t.Fatalf("status %d: %d statuses for %d bids", status, len(got), len(askedBids))
		}
		for i, st := range got {
			if st.BidID != askedBids[i].ID || st.PostingID != askedBids[i].PostingID || !st.Outcome.Valid() {
				t.Fatalf("status %d: %+v for %+v", i, st, askedBids[i])
			}
			if len(st.Text) > statusbatch.MaxText+3 || !textsafe.Clean(st.Text) {
				t.Fatalf("text %q: over the cap or unsafe to print", st.Text)
			}
		}
	})
}

func FuzzDecodeRetractAnswer(f *testing.F) {
	f.Add(200, "", []byte(`{"status":"retracted","bid":{"id":"b-1"}}`))
	f.Add(409, "", []byte(`{"error":"retract_too_late","status":"awarded"}`))
	f.Add(429, "3", []byte(`{"error":"rate_limited"}`))
	f.Add(503, "", []byte(`{"error":"unavailable"}`))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		err := decodeRetractAnswer("b-1", status, h, body)
		me := httpxtest.CheckClassified(t, err)
		if err == nil {
			if status != 200 {
				t.Fatalf("status %d taken as retracted", status)
			}
			return
		}
		// Anything but a refusal may have retracted the bid.
		refusal := status >= 400 && status <= 499 || status == 503 && me.Class == marketplace.ErrTransient
		if !refusal && me.Class != marketplace.ErrAmbiguous {
			t.Fatalf("status %d: class %v; a retract that may have happened must be ambiguous", status, me.Class)
		}
		if status >= 400 && status <= 499 && me.Class == marketplace.ErrAmbiguous {
			t.Fatalf("status %d: a refusal reported as ambiguous", status)
		}
		if me.RetryAfter < 0 || me.RetryAfter > maxRetryAfter {
			t.Fatalf("RetryAfter %s from %q", me.RetryAfter, retryAfter)
		}
	})
}
