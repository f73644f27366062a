package freelancer

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/httpx/httpxtest"
)

// The committed corpus under testdata/fuzz/ replays on every `go test`; run
// `go test -fuzz FuzzDecodeBidAnswer ./marketplace/freelancer` (or another
// Fuzz target) to search further.

var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// checkClassified is httpxtest.CheckClassified plus what Freelancer's
// decoders promise on top: a bounded RetryAfter and capped server text.
func checkClassified(t *testing.T, err error) *marketplace.Error {
	t.Helper()
	if err == nil {
		return nil
	}
	me := httpxtest.CheckClassified(t, err)
	if me.RetryAfter < 0 || me.RetryAfter > maxRetryAfter {
		t.Fatalf("RetryAfter %s", me.RetryAfter)
	}
	if len(err.Error()) > 2000 {
		t.Fatalf("error text of %d bytes: server text is not capped", len(err.Error()))
	}
	return me
}

func FuzzDecodeBidAnswer(f *testing.F) {
	f.Add(200, "", []byte(`{"status":"success","result":{"id":9001,"bidder_id":4242,"project_id":12,"amount":100,"time_submitted":1767225600}}`))
	f.Add(409, "", []byte(`{"status":"error","message":"You have already bid on that project.","error_code":"ProjectExceptionCodes.DUPLICATE_BID","request_id":"r"}`))
	f.Add(429, "3", []byte(`{"status":"error","error_code":"TOO_MANY_REQUESTS"}`))
	f.Add(503, "", []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		pb, err := decodeBidAnswer(12, testSelfID, "USD", status, h, body, fuzzNow)
		me := checkClassified(t, err)
		if err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("status %d decoded as a placed bid", status)
			}
			if pb.ID == "" || pb.PostingID != "12" || pb.Currency != "USD" {
				t.Fatalf("accepted an invalid bid %+v", pb)
			}
			return
		}
		if (status < 400 || status > 499) && me.Class != marketplace.ErrAmbiguous {
			t.Fatalf("status %d: class %v; a bid Freelancer may have stored must be ambiguous", status, me.Class)
		}
		if status >= 400 && status <= 499 && me.Class == marketplace.ErrAmbiguous {
			t.Fatalf("status %d: a refusal reported as ambiguous", status)
		}
	})
}

func FuzzDecodeProjects(f *testing.F) {
	f.Add(200, []byte(`{"status":"success","result":{"projects":[{"id":1,"owner_id":2,"title":"t","status":"active","type":"fixed","currency":{"code":"USD"},"budget":{"minimum":10,"maximum":20},"time_submitted":1767225600,"jobs":[{"name":"Go"}]}],"users":{"2":{"employer_reputation":{"entire_history":{"overall":4.5}},"location":{"country":{"code":"us"}}}}}}`))
	f.Add(200, []byte(`{"status":"success","result":{"projects":[]}}`))
	f.Add(401, []byte(`{"status":"error","error_code":"RestExceptionCodes.NOT_AUTHENTICATED"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		page, err := decodeProjects("fl", "https://www.freelancer.com", maxLimit, status, http.Header{}, body, fuzzNow)
		checkClassified(t, err)
		if err != nil {
			return
		}
		if status != 200 {
			t.Fatalf("status %d decoded as a page", status)
		}
		if len(page.ids) != len(page.times) || len(page.postings) > len(page.ids) {
			t.Fatalf("page bookkeeping: %d ids, %d times, %d postings", len(page.ids), len(page.times), len(page.postings))
		}
		checkProjectsAgainstUnmarshal(t, body, page)
		for _, p := range page.postings {
			b := p.Budget
			switch {
			case p.ID == "" || p.ID[0] == '0' || strings.Trim(p.ID, "0123456789") != "":
				t.Fatalf("posting id %q", p.ID)
			case b.Type != marketplace.BudgetFixed && b.Type != marketplace.BudgetHourly:
				t.Fatalf("budget type %q", b.Type)
			case !isCurrency(b.Currency):
				t.Fatalf("currency %q", b.Currency)
			case !(b.Min >= 0 && b.Max >= b.Min):
				t.Fatalf("budget %v..%v", b.Min, b.Max)
			case p.Status != marketplace.StatusOpen && p.Status != marketplace.StatusClosed:
				t.Fatalf("status %q", p.Status)
			case !(p.Client.Rating >= 0 && p.Client.Rating <= 5):
				t.Fatalf("rating %v", p.Client.Rating)
			case !strings.HasPrefix(p.URL, "https://www.freelancer.com/projects/") || strings.Contains(p.URL, ".."):
				t.Fatalf("url %q", p.URL)
			}
		}
	})
}

// checkProjectsAgainstUnmarshal: what the stream accepted, json.Unmarshal
// reads the same: every project ID the page kept is in the answer's list,
// in its order.
func checkProjectsAgainstUnmarshal(t *testing.T, body []byte, page projectsPage) {
	t.Helper()
	var ref struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &ref); err != nil {
		t.Fatalf("accepted what json.Unmarshal refuses: %v", err)
	}
	if httpxtest.AmbiguousKeys(ref.Result) {
		return
	}
	var result struct {
		Projects []json.RawMessage `json:"projects"`
	}
	if err := json.Unmarshal(ref.Result, &result); err != nil {
		t.Fatalf("accepted a result json.Unmarshal refuses: %v", err)
	}
	j := 0
	for _, id := range page.ids {
		for ; j < len(result.Projects); j++ {
			var p struct {
				ID json.Number `json:"id"`
			}
			if json.Unmarshal(result.Projects[j], &p) == nil {
				if v, ok := positiveID(p.ID); ok && v == id {
					break
				}
			}
		}
		if j == len(result.Projects) {
			t.Fatalf("project %d kept, not in json.Unmarshal's list of %d", id, len(result.Projects))
		}
	}
}

func FuzzDecodeFindBid(f *testing.F) {
	f.Add(200, []byte(`{"status":"success","result":{"bids":[{"id":7,"project_id":12,"bidder_id":4242,"amount":50,"time_submitted":100}]}}`))
	f.Add(200, []byte(`{"status":"success","result":{"bids":[]}}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		pb, found, err := decodeFindBid(12, testSelfID, status, http.Header{}, body, fuzzNow)
		checkClassified(t, err)
		if err != nil && found {
			t.Fatal("found with an error")
		}
		if found && (pb.PostingID != "12" || pb.ID == "") {
			t.Fatalf("found %+v", pb)
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add(cursorState{From: 1767225000, Offset: 40, Seen: []int64{3, 2, 1}, High: 1767225600}.encode())
	f.Add(cursorState{From: 1767225000, High: 1767225600, Probe: true}.encode())
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			return
		}
		// Whatever decodes must be safe to page from and re-encode.
		if c.Offset < len(c.Seen) || c.Offset > maxOffset || len(c.Seen) > maxOverlap {
			t.Fatalf("accepted %+v", c)
		}
		back, err := decodeCursor(c.encode())
		if err != nil || !back.equal(c) {
			t.Fatalf("re-encode of %+v: %+v %v", c, back, err)
		}
	})
}
