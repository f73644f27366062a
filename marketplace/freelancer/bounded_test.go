package freelancer

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace/internal/httpx/httpxtest"
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

// TestDecodersBoundedOnHostileAnswers: the byte cap alone bounded nothing.
// {"result":{"projects":[{},{},...]}} holds 2.8 M elements in 8 MiB, each
// kept as raw JSON and then as a dropped-project error: 2.0 GB (1.2 GB for
// a find-bid answer).
func TestDecodersBoundedOnHostileAnswers(t *testing.T) {
	const n = MaxAnswerBytes
	flood, value := httpxtest.FloodBound(n), httpxtest.ValueBound(n)
	f, aim := httpxtest.Flood, httpxtest.Aim
	ok := `{"status":"success","result":`
	project := `{"id":%d,"owner_id":2,"title":"t","status":"active","type":"fixed","currency":{"code":"USD"},"budget":{"minimum":10},"time_submitted":1767225600,"jobs":[{"name":"Go"}]}`
	bid := `{"id":%d,"project_id":12,"bidder_id":4242,"amount":50,"time_submitted":100}`
	under := maxValues - 100 // just under the value count check
	httpxtest.CheckBounded(t, n, map[string]func(int, []byte){
		"projects": func(s int, b []byte) {
			_, _ = decodeProjects("fl", "https://www.freelancer.com", maxLimit, s, http.Header{}, b, fuzzNow)
		},
		"find": func(s int, b []byte) { _, _, _ = decodeFindBid(12, testSelfID, s, http.Header{}, b, fuzzNow) },
		"bid":  func(s int, b []byte) { _, _ = decodeBidAnswer(12, testSelfID, "USD", s, http.Header{}, b, fuzzNow) },
		"self": func(s int, b []byte) { _, _ = decodeSelf(s, http.Header{}, b, fuzzNow) },
		"project": func(s int, b []byte) {
			_, _ = decodeProject("fl", "https://www.freelancer.com", 1, s, http.Header{}, b, fuzzNow)
		},
	}, []httpxtest.Hostile{
		aim("empty projects", "projects find", 200, f(ok+`{"projects":[`, `{}`, `]}}`, n), flood),
		aim("valid projects", "projects", 200, f(ok+`{"projects":[`, fmt.Sprintf(project, 1), `]}}`, n), flood),
		aim("users", "projects", 200, f(ok+`{"projects":[],"users":{`, `"1":{}`, `}}}`, n), flood),
		aim("jobs in one project", "projects", 200, f(ok+`{"projects":[{"id":1,"jobs":[`, `{}`, `]}]}}`, n), flood),
		aim("empty bids", "find projects", 200, f(ok+`{"bids":[`, `{}`, `]}}`, n), flood),
		aim("envelope keys", "projects find bid self project", 200, f(`{`, `"k":0`, `}`, n), flood),
		aim("jobs in the one project", "project", 200, f(ok+`{"id":1,"jobs":[`, `{}`, `]}}`, n), flood),
		aim("escaped keys in the one project", "project", 200, f(ok+`{`, `"\u0069d":0`, `}}`, n), flood),
		aim("the one project's huge title", "project", 200, httpxtest.Huge(ok+`{"id":1,"title":"`, n-96, `"}}`), value),
		aim("error keys", "projects bid", 422, f(`{`, `"k":0`, `}`, n), flood),
		aim("escaped keys in one project", "projects", 200, f(ok+`{"projects":[{`, `"\u0069d":0`, `}]}}`, n), flood),
		// Under the value count check, decoding stops at the list limits.
		aim("valid projects, under the value count", "projects find", 200, distinct(ok+`{"projects":[`, project, `]}}`, under/30), flood),
		aim("valid bids, under the value count", "find", 200, distinct(ok+`{"bids":[`, bid, `]}}`, under/12), flood),
		aim("users, under the value count", "projects", 200, distinct(ok+`{"projects":[],"users":{`, `"%d":{}`, `}}}`, under/3), flood),
		aim("escaped keys, under the value count", "projects", 200, httpxtest.Repeat(ok+`{"projects":[{`, `"\u0069d":0`, `}]}}`, under/2), value),
		aim("one huge title", "projects find self", 200, httpxtest.Huge(ok+`{"projects":[{"id":1,"title":"`, n-96, `"}]}}`), value),
		aim("one huge message", "projects bid", 422, httpxtest.Huge(`{"status":"error","error_code":"X","message":"`, n-96, `"}`), value),
	})
}
