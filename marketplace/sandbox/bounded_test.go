package sandbox

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace/internal/httpx/httpxtest"
)

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

// TestDecodersBoundedOnHostileAnswers: the byte cap alone bounded nothing.
// {"postings":[{},{},...]} holds 2.8 M elements in 8 MiB, and decoding it
// into typed slices took 3.4 GB (1.6 GB for a find-bid answer).
func TestDecodersBoundedOnHostileAnswers(t *testing.T) {
	const n = MaxAnswerBytes
	flood, value := httpxtest.FloodBound(n), httpxtest.ValueBound(n)
	f, r, aim := httpxtest.Flood, httpxtest.Repeat, httpxtest.Aim
	bid := `{"id":"b-1","posting_id":"p-1","created_at":"2026-11-27T10:00:00Z"}`
	under := maxValues - 100 // just under the value count check
	httpxtest.CheckBounded(t, n, map[string]func(int, []byte){
		"page":    func(s int, b []byte) { _, _ = decodePage("m", "", maxLimit, s, http.Header{}, b) },
		"find":    func(s int, b []byte) { _, _, _ = decodeFindBid("p-1", s, http.Header{}, b) },
		"posting": func(s int, b []byte) { _, _ = decodePosting("m", "p-1", s, http.Header{}, b) },
		"bid":     func(s int, b []byte) { _, _ = decodeBidAnswer("p-1", s, http.Header{}, b) },
	}, []httpxtest.Hostile{
		aim("empty postings", "page find", 200, f(`{"next_cursor":"c","postings":[`, `{}`, `]}`, n), flood),
		aim("valid postings", "page", 200, f(`{"next_cursor":"c","postings":[`, validPostingJSON, `]}`, n), flood),
		aim("empty bids", "find", 200, f(`{"bids":[`, `{}`, `]}`, n), flood),
		aim("valid bids", "find page", 200, f(`{"bids":[`, bid, `]}`, n), flood),
		aim("top-level keys", "page find posting bid", 200, f(`{`, `"k":0`, `}`, n), flood),
		aim("error keys", "page bid", 400, f(`{`, `"k":0`, `}`, n), flood),
		aim("skills in one posting", "page", 200, f(`{"next_cursor":"c","postings":[{"id":"p-1","skills":[`, `""`, `]}]}`, n), flood),
		aim("escaped keys in one posting", "page", 200, f(`{"next_cursor":"c","postings":[{`, `"\u0069d":0`, `}]}`, n), flood),
		aim("huge posting skills", "posting", 200, f(`{"id":"p-1","skills":[`, `""`, `]}`, n), flood),
		// Under the value count check, decoding stops at the list limits.
		aim("valid postings, under the value count", "page", 200, distinctPostings(under/40), flood),
		aim("valid bids, under the value count", "find", 200, r(`{"bids":[`, bid, `]}`, under/8), flood),
		aim("top-level keys, under the value count", "page find", 200, r(`{`, `"k":0`, `}`, under/2), flood),
		aim("escaped keys, under the value count", "page", 200, r(`{"next_cursor":"c","postings":[{`, `"\u0069d":0`, `}]}`, under/2), value),
		aim("one huge title", "page find", 200, httpxtest.Huge(`{"next_cursor":"c","postings":[{"title":"`, n-64, `"}]}`), value),
		aim("one huge detail", "page bid", 400, httpxtest.Huge(`{"error":"bad_request","detail":"`, n-64, `"}`), value),
	})
}
