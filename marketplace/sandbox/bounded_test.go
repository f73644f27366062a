package sandbox

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace/internal/httpx/httpxtest"
)

// Allocation bounds for decoding one hostile answer. The byte cap alone
// bounded nothing: {"postings":[{},{},...]} holds 2.8 M elements in 8 MiB,
// and decoding it into typed slices took 3.6 GB (1.7 GB for a find-bid
// answer).
const (
	// floodBound is for answers whose cost comes from their element count:
	// at most the answer's own size (a decoder that skips a list it does not
	// read buffers it). The value count check refuses those over maxValues
	// before decoding,
	// and decoding stops at the largest list the contract allows.
	floodBound = MaxAnswerBytes
	// valueBound is for everything else: one huge value is decoded, so it
	// costs a few times its size (the stream decoder buffers a value whole
	// before decoding it), and encoding/json's worst per-value cost (an
	// escaped key of a field, of the wrong type) is ~120 bytes.
	valueBound = 6 * MaxAnswerBytes
)

type hostileAnswer struct {
	name     string
	decoders string // the decoders it is aimed at
	status   int
	body     []byte
	bound    uint64
}

func hostileAnswers() []hostileAnswer {
	const n = MaxAnswerBytes
	f, r := httpxtest.Flood, httpxtest.Repeat
	bid := `{"id":"b-1","posting_id":"p-1","created_at":"2026-11-27T10:00:00Z"}`
	under := maxValues - 100 // just under the value count check
	return []hostileAnswer{
		{"empty postings", "page find", 200, f(`{"next_cursor":"c","postings":[`, `{}`, `]}`, n), floodBound},
		{"valid postings", "page", 200, f(`{"next_cursor":"c","postings":[`, validPostingJSON, `]}`, n), floodBound},
		{"empty bids", "find", 200, f(`{"bids":[`, `{}`, `]}`, n), floodBound},
		{"valid bids", "find page", 200, f(`{"bids":[`, bid, `]}`, n), floodBound},
		{"top-level keys", "page find posting bid", 200, f(`{`, `"k":0`, `}`, n), floodBound},
		{"error keys", "page bid", 400, f(`{`, `"k":0`, `}`, n), floodBound},
		{"skills in one posting", "page", 200, f(`{"next_cursor":"c","postings":[{"id":"p-1","skills":[`, `""`, `]}]}`, n), floodBound},
		{"escaped keys in one posting", "page", 200, f(`{"next_cursor":"c","postings":[{`, `"\u0069d":0`, `}]}`, n), floodBound},
		{"huge posting skills", "posting", 200, f(`{"id":"p-1","skills":[`, `""`, `]}`, n), floodBound},
		// Under the value count check, decoding stops at the list limits.
		{"valid postings, under the value count", "page", 200, distinctPostings(under / 40), floodBound},
		{"valid bids, under the value count", "find", 200, r(`{"bids":[`, bid, `]}`, under/8), floodBound},
		{"top-level keys, under the value count", "page find", 200, r(`{`, `"k":0`, `}`, under/2), floodBound},
		{"escaped keys, under the value count", "page", 200, r(`{"next_cursor":"c","postings":[{`, `"\u0069d":0`, `}]}`, under/2), valueBound},
		{"one huge title", "page find", 200, httpxtest.Huge(`{"next_cursor":"c","postings":[{"title":"`, n-64, `"}]}`), valueBound},
		{"one huge detail", "page bid", 400, httpxtest.Huge(`{"error":"bad_request","detail":"`, n-64, `"}`), valueBound},
	}
}

// distinctPostings is a page of n valid postings with distinct IDs.
func distinctPostings(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"next_cursor":"c","postings":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strings.Replace(validPostingJSON, `"p-1"`, fmt.Sprintf(`"p-%d"`, i), 1))
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// TestDecodersBoundedOnHostileAnswers runs each hostile shape through the
// decoders it is aimed at and holds what they allocate under its bound.
func TestDecodersBoundedOnHostileAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 8 MiB answers")
	}
	decoders := map[string]func(status int, body []byte){
		"page":    func(s int, b []byte) { _, _ = decodePage("m", "", maxLimit, s, http.Header{}, b) },
		"find":    func(s int, b []byte) { _, _, _ = decodeFindBid("p-1", s, http.Header{}, b) },
		"posting": func(s int, b []byte) { _, _ = decodePosting("m", "p-1", s, http.Header{}, b) },
		"bid":     func(s int, b []byte) { _, _ = decodeBidAnswer("p-1", s, http.Header{}, b) },
	}
	for _, a := range hostileAnswers() {
		if len(a.body) > MaxAnswerBytes {
			t.Fatalf("%s: %d bytes, over the cap", a.name, len(a.body))
		}
		for _, name := range strings.Fields(a.decoders) {
			decode := decoders[name]
			got := httpxtest.AllocatedBytes(func() { decode(a.status, a.body) })
			t.Logf("%-7s %-40s %6.2f MiB", name, a.name, float64(got)/(1<<20))
			if got > a.bound {
				t.Errorf("%s decoder, %s (%d bytes): allocated %d bytes, bound %d", name, a.name, len(a.body), got, a.bound)
			}
		}
	}
}
