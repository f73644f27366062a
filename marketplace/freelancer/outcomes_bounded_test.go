package freelancer

import (
	"net/http"
	"testing"

	"github.com/bidder/bidder/marketplace/internal/httpx/httpxtest"
)

// The status and retract decoders on hostile answers of their full size
// cap: what they cost is bounded by MaxStatusBatch, not by the answer.
func TestOutcomeDecodersBoundedOnHostileAnswers(t *testing.T) {
	const n = maxStatusAnswerBytes
	const batch = 256 << 10 // the result is decoded once, then the list stops at MaxStatusBatch
	f, r, aim := httpxtest.Flood, httpxtest.Repeat, httpxtest.Aim
	under := maxValues - 100
	b7 := `{"id":7,"project_id":12,"bidder_id":4242,"award_status":"awarded"}`
	httpxtest.CheckBounded(t, n, map[string]func(int, []byte){
		"statuses": func(s int, b []byte) { _, _ = decodeStatuses(fuzzAsked, testSelfID, s, http.Header{}, b, fuzzNow) },
		"retract":  func(s int, b []byte) { _ = decodeRetractAnswer(s, http.Header{}, b, fuzzNow) },
	}, []httpxtest.Hostile{
		aim("empty bids", "statuses retract", 200, f(`{"status":"success","result":{"bids":[`, `{}`, `]}}`, n), httpxtest.FloodBound(n)),
		aim("top-level keys", "statuses retract", 200, f(`{`, `"k":0`, `}`, n), httpxtest.FloodBound(n)),
		aim("error keys", "statuses retract", 400, f(`{`, `"k":0`, `}`, n), httpxtest.FloodBound(n)),
		aim("bids, under the value count", "statuses", 200, r(`{"status":"success","result":{"bids":[`, b7, `]}}`, under/12), httpxtest.FloodBound(n)),
		aim("empty bids, under the value count", "statuses", 200, r(`{"status":"success","result":{"bids":[`, `{}`, `]}}`, under/2), batch),
		aim("one huge award status", "statuses retract", 200, httpxtest.Huge(`{"status":"success","result":{"bids":[{"id":7,"project_id":12,"award_status":"`, n-128, `"}]}}`), httpxtest.ValueBound(n)),
	})
}
