package freelancer

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace/internal/httpx/httpxtest"
)

// Allocation bounds for decoding one hostile answer. The byte cap alone
// bounded nothing: {"result":{"projects":[{},{},...]}} holds 2.8 M elements
// in 8 MiB, each kept as raw JSON and then as a dropped-project error: 2.1 GB
// (1.3 GB for a find-bid answer).
const (
	// floodBound is for answers whose cost comes from their element count:
	// at most the answer's own size (a decoder that skips a list it does not
	// read buffers it). The value count check refuses those over maxValues
	// before decoding,
	// and decoding stops at the largest list the API sends.
	floodBound = MaxAnswerBytes
	// valueBound is for everything else: one huge value is decoded, so it
	// costs a few times its size (the stream decoder buffers a value whole
	// before decoding it), and encoding/json's worst per-value cost (an
	// escaped key of a field, of the wrong type) is ~120 bytes.
	valueBound = 6 * MaxAnswerBytes
)

// distinct is n copies of elem joined by commas, the i-th with its "%d"
// replaced by i+1.
func distinct(head, elem, tail string, n int) []byte {
	var b strings.Builder
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, elem, i+1)
	}
	b.WriteString(tail)
	return []byte(b.String())
}

// TestDecodersBoundedOnHostileAnswers runs each hostile shape through the
// decoders it is aimed at and holds what they allocate under its bound.
func TestDecodersBoundedOnHostileAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 8 MiB answers")
	}
	const n = MaxAnswerBytes
	f := httpxtest.Flood
	ok := `{"status":"success","result":`
	project := `{"id":%d,"owner_id":2,"title":"t","status":"active","type":"fixed","currency":{"code":"USD"},"budget":{"minimum":10},"time_submitted":1767225600,"jobs":[{"name":"Go"}]}`
	bid := `{"id":%d,"project_id":12,"bidder_id":4242,"amount":50,"time_submitted":100}`
	under := maxValues - 100 // just under the value count check
	answers := []struct {
		name     string
		decoders string // the decoders it is aimed at
		status   int
		body     []byte
		bound    uint64
	}{
		{"empty projects", "projects find", 200, f(ok+`{"projects":[`, `{}`, `]}}`, n), floodBound},
		{"valid projects", "projects", 200, f(ok+`{"projects":[`, fmt.Sprintf(project, 1), `]}}`, n), floodBound},
		{"users", "projects", 200, f(ok+`{"projects":[],"users":{`, `"1":{}`, `}}}`, n), floodBound},
		{"jobs in one project", "projects", 200, f(ok+`{"projects":[{"id":1,"jobs":[`, `{}`, `]}]}}`, n), floodBound},
		{"empty bids", "find projects", 200, f(ok+`{"bids":[`, `{}`, `]}}`, n), floodBound},
		{"envelope keys", "projects find bid self", 200, f(`{`, `"k":0`, `}`, n), floodBound},
		{"error keys", "projects bid", 422, f(`{`, `"k":0`, `}`, n), floodBound},
		{"escaped keys in one project", "projects", 200, f(ok+`{"projects":[{`, `"\u0069d":0`, `}]}}`, n), floodBound},
		// Under the value count check, decoding stops at the list limits.
		{"valid projects, under the value count", "projects find", 200, distinct(ok+`{"projects":[`, project, `]}}`, under/30), floodBound},
		{"valid bids, under the value count", "find", 200, distinct(ok+`{"bids":[`, bid, `]}}`, under/12), floodBound},
		{"users, under the value count", "projects", 200, distinct(ok+`{"projects":[],"users":{`, `"%d":{}`, `}}}`, under/3), floodBound},
		{"escaped keys, under the value count", "projects", 200, httpxtest.Repeat(ok+`{"projects":[{`, `"\u0069d":0`, `}]}}`, under/2), valueBound},
		{"one huge title", "projects find self", 200, httpxtest.Huge(ok+`{"projects":[{"id":1,"title":"`, n-96, `"}]}}`), valueBound},
		{"one huge message", "projects bid", 422, httpxtest.Huge(`{"status":"error","error_code":"X","message":"`, n-96, `"}`), valueBound},
	}
	decoders := map[string]func(status int, body []byte){
		"projects": func(s int, b []byte) {
			_, _ = decodeProjects("fl", "https://www.freelancer.com", maxLimit, s, http.Header{}, b, fuzzNow)
		},
		"find": func(s int, b []byte) { _, _, _ = decodeFindBid(12, testSelfID, s, http.Header{}, b, fuzzNow) },
		"bid":  func(s int, b []byte) { _, _ = decodeBidAnswer(12, testSelfID, "USD", s, http.Header{}, b, fuzzNow) },
		"self": func(s int, b []byte) { _, _ = decodeSelf(s, http.Header{}, b, fuzzNow) },
	}
	for _, a := range answers {
		if len(a.body) > MaxAnswerBytes {
			t.Fatalf("%s: %d bytes, over the cap", a.name, len(a.body))
		}
		for _, name := range strings.Fields(a.decoders) {
			decode := decoders[name]
			got := httpxtest.AllocatedBytes(func() { decode(a.status, a.body) })
			t.Logf("%-9s %-40s %6.2f MiB", name, a.name, float64(got)/(1<<20))
			if got > a.bound {
				t.Errorf("%s decoder, %s (%d bytes): allocated %d bytes, bound %d", name, a.name, len(a.body), got, a.bound)
			}
		}
	}
}
