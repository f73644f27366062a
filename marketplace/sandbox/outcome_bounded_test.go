package sandbox

import (
	"net/http"
	"testing"

	"github.com/bidder/bidder/marketplace/internal/httpx/httpxtest"
)

// The status and retract decoders on hostile answers of their full size
// cap: what they cost is bounded by the batch, not by the answer.
func TestOutcomeDecodersBoundedOnHostileAnswers(t *testing.T) {
	const n = maxStatusAnswerBytes
	const batch = 64 << 10 // a status list stops at the bids asked about
	f, r, aim := httpxtest.Flood, httpxtest.Repeat, httpxtest.Aim
	under := maxValues - 100
	httpxtest.CheckBounded(t, n, map[string]func(int, []byte){
		"statuses": func(s int, b []byte) { _, _ = decodeStatuses(askedBids, s, http.Header{}, b) },
		"retract":  func(s int, b []byte) { _ = decodeRetractAnswer("b-1", s, http.Header{}, b) },
	}, []httpxtest.Hostile{
		aim("empty entries", "statuses retract", 200, f(`{"statuses":[`, `{}`, `]}`, n), httpxtest.FloodBound(n)),
		aim("top-level keys", "statuses retract", 200, f(`{`, `"k":0`, `}`, n), httpxtest.FloodBound(n)),
		aim("error keys", "statuses retract", 409, f(`{`, `"k":0`, `}`, n), httpxtest.FloodBound(n)),
		aim("entries, under the value count", "statuses", 200, r(`{"statuses":[`, entry1, `]}`, under/6), batch),
		aim("empty entries, under the value count", "statuses", 200, r(`{"statuses":[`, `{}`, `]}`, under/2), batch),
		aim("one huge status", "statuses retract", 200, httpxtest.Huge(`{"statuses":[{"id":"b-1","status":"`, n-64, `"}]}`), httpxtest.ValueBound(n)),
	})
}
