package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace"
)

// Broken servers and the outcomes extension: every answer outside the table
// is a classified error or an unknown outcome, never a panic or an invented
// one.

var askedBids = []marketplace.PlacedBid{{ID: "b-1", PostingID: "p-1"}, {ID: "b-2", PostingID: "p-2"}}

func statusJSON(entries ...string) string {
	return `{"statuses":[` + strings.Join(entries, ",") + `]}`
}

const (
	entry1 = `{"id":"b-1","posting_id":"p-1","status":"awarded","changed_at":"2026-11-27T11:00:00Z"}`
	entry2 = `{"id":"b-2","posting_id":"p-2","status":"pending","changed_at":"2026-11-27T10:00:00Z"}`
)

func TestMalformedStatusAnswers(t *testing.T) {
	many := make([]string, 3)
	for i := range many {
		many[i] = entry1
	}
	members := make([]string, maxMembers+1)
	for i := range members {
		members[i] = fmt.Sprintf(`"k%d":1`, i)
	}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		class   error
		reason  string
	}{
		{"bad json", fixed(200, `{"statuses":[`), marketplace.ErrTransient, ReasonMalformed},
		{"cut inside an entry", fixed(200, `{"statuses":[{"id":"b-1"`), marketplace.ErrTransient, ReasonMalformed},
		{"empty 200", fixed(200, ``), marketplace.ErrTransient, ReasonMalformed},
		{"html 200", fixed(200, `<html/>`), marketplace.ErrTransient, ReasonMalformed},
		{"null", fixed(200, `null`), marketplace.ErrPermanent, ReasonInvalid},
		{"no list", fixed(200, `{"bids":[]}`), marketplace.ErrPermanent, ReasonInvalid},
		{"null list", fixed(200, `{"statuses":null}`), marketplace.ErrPermanent, ReasonInvalid},
		{"list is an object", fixed(200, `{"statuses":{"b-1":"awarded"}}`), marketplace.ErrPermanent, ReasonInvalid},
		{"top level is a list", fixed(200, `[`+entry1+`]`), marketplace.ErrPermanent, ReasonInvalid},
		{"more entries than asked", fixed(200, statusJSON(many...)), marketplace.ErrPermanent, ReasonInvalid},
		{"a bid not asked about", fixed(200, statusJSON(strings.Replace(entry1, `"b-1"`, `"b-9"`, 1))), marketplace.ErrPermanent, ReasonInvalid},
		{"a bid twice", fixed(200, statusJSON(entry1, entry1)), marketplace.ErrPermanent, ReasonInvalid},
		{"another posting", fixed(200, statusJSON(strings.Replace(entry1, `"p-1"`, `"p-9"`, 1))), marketplace.ErrPermanent, ReasonInvalid},
		{"bad time", fixed(200, statusJSON(strings.Replace(entry1, `2026-11-27T11:00:00Z`, `soon`, 1))), marketplace.ErrPermanent, ReasonInvalid},
		{"wrong types", fixed(200, statusJSON(`{"id":1,"status":true}`)), marketplace.ErrPermanent, ReasonInvalid},
		{"trailing value", fixed(200, statusJSON(entry1)+` {}`), marketplace.ErrTransient, ReasonMalformed},
		{"too many members", fixed(200, `{`+strings.Join(members, ",")+`}`), marketplace.ErrPermanent, ReasonInvalid},
		{"huge body", huge(200), marketplace.ErrTransient, ReasonTooLarge},
		{"dropped connection", dropConnection, marketplace.ErrTransient, ReasonNoAnswer},
		{"truncated body", truncated(200, `{"statuses":[`), marketplace.ErrTransient, ""},
		{"500", fixed(500, ``), marketplace.ErrTransient, "http_500"},
		{"404 (a server without the extension)", fixed(404, `{"error":"not_found"}`), marketplace.ErrPermanent, codeNotFound},
		{"429", fixed(429, `{"error":"rate_limited"}`, "Retry-After", "2"), marketplace.ErrRateLimited, codeRateLimited},
		{"302", fixed(302, ``, "Location", "/x"), marketplace.ErrPermanent, ReasonUnexpected},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := brokenServer(t, c.handler).BidStatuses(context.Background(), askedBids)
			wantClass(t, err, c.class, c.reason)
			if got != nil {
				t.Fatalf("statuses with an error: %+v", got)
			}
			if strings.Contains(err.Error(), secretToken) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}

	// Lenient where nothing is lost: unknown members and a second list are
	// skipped (the first counts, as in every decoder of this adapter), and
	// a status this adapter does not know yet is an unknown outcome with the
	// server's word (cleaned) kept.
	for name, c := range map[string]struct {
		body string
		want []marketplace.Outcome
		text string
	}{
		"extra members":  {`{"note":{"deep":[1,2,{"x":null}]},"statuses":[` + entry1 + `],"next":"x"}`, []marketplace.Outcome{marketplace.OutcomeAwarded, marketplace.OutcomeUnknown}, "awarded"},
		"second list":    {`{"statuses":[` + entry1 + `],"statuses":[` + entry2 + `]}`, []marketplace.Outcome{marketplace.OutcomeAwarded, marketplace.OutcomeUnknown}, "awarded"},
		"new status":     {statusJSON(strings.Replace(entry1, `"awarded"`, `"shortlisted\u001b[2J"`, 1), entry2), []marketplace.Outcome{marketplace.OutcomeUnknown, marketplace.OutcomePending}, "shortlisted\uFFFD[2J"},
		"reversed order": {statusJSON(entry2, entry1), []marketplace.Outcome{marketplace.OutcomeAwarded, marketplace.OutcomePending}, "awarded"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := brokenServer(t, fixed(200, c.body)).BidStatuses(context.Background(), askedBids)
			if err != nil || len(got) != 2 {
				t.Fatalf("%+v, %v", got, err)
			}
			for i, st := range got {
				if st.BidID != askedBids[i].ID || st.PostingID != askedBids[i].PostingID || st.Outcome != c.want[i] {
					t.Fatalf("status %d: %+v, want %s for %+v", i, st, c.want[i], askedBids[i])
				}
			}
			if got[0].Text != c.text {
				t.Fatalf("text %q, want %q", got[0].Text, c.text)
			}
		})
	}
}

func TestMalformedRetractAnswers(t *testing.T) {
	ok := `{"status":"retracted","changed_at":"2026-11-27T10:00:00Z","bid":{"id":"b-1","posting_id":"p-1"}}`
	cases := []struct {
		name    string
		handler http.HandlerFunc
		class   error
		reason  string
	}{
		{"bad json 200", fixed(200, `{"status":`), marketplace.ErrAmbiguous, ReasonMalformed},
		{"empty 200", fixed(200, ``), marketplace.ErrAmbiguous, ReasonMalformed},
		{"200 without the status", fixed(200, `{}`), marketplace.ErrAmbiguous, ReasonInvalid},
		{"200 another status", fixed(200, `{"status":"pending"}`), marketplace.ErrAmbiguous, ReasonInvalid},
		{"200 another bid", fixed(200, strings.Replace(ok, `"b-1"`, `"b-2"`, 1)), marketplace.ErrAmbiguous, ReasonInvalid},
		{"200 wrong types", fixed(200, `{"status":7}`), marketplace.ErrAmbiguous, ReasonInvalid},
		{"huge 200", huge(200), marketplace.ErrAmbiguous, ReasonTooLarge},
		{"dropped connection", dropConnection, marketplace.ErrAmbiguous, ReasonNoAnswer},
		{"truncated 200", truncated(200, `{"status":"retr`), marketplace.ErrAmbiguous, ""},
		{"504", fixed(504, `{"error":"gateway_timeout"}`), marketplace.ErrAmbiguous, "gateway_timeout"},
		{"500 no body", fixed(500, ``), marketplace.ErrAmbiguous, "http_500"},
		{"503 from a proxy", fixed(503, `Service Unavailable`), marketplace.ErrAmbiguous, "http_503"},
		{"503 from the contract", fixed(503, `{"error":"unavailable"}`), marketplace.ErrTransient, "unavailable"},
		{"302", fixed(302, ``, "Location", "/x"), marketplace.ErrAmbiguous, ReasonUnexpected},
		{"204", fixed(204, ``), marketplace.ErrAmbiguous, ReasonUnexpected},
		{"404 garbage", fixed(404, `nope`), marketplace.ErrBidNotFound, codeNotFound},
		{"409 garbage", fixed(409, `nope`), marketplace.ErrRetractTooLate, ReasonRetractTooLate},
		{"huge 409", huge(409), marketplace.ErrRetractTooLate, ReasonRetractTooLate},
		{"400", fixed(400, `{"error":"bad_request"}`), marketplace.ErrPermanent, codeBadRequest},
		{"401", fixed(401, `{"error":"unauthorized"}`), marketplace.ErrPermanent, codeUnauthorized},
		{"429 bad retry-after", fixed(429, `{}`, "Retry-After", "soon"), marketplace.ErrRateLimited, codeRateLimited},
		{"418", fixed(418, `{}`), marketplace.ErrPermanent, ReasonUnexpected},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := brokenServer(t, c.handler).RetractBid(context.Background(), "p-1", marketplace.PlacedBid{ID: "b-1"})
			wantClass(t, err, c.class, c.reason)
			if strings.Contains(err.Error(), secretToken) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
	if err := brokenServer(t, fixed(200, ok)).RetractBid(context.Background(), "p-1", marketplace.PlacedBid{ID: "b-1"}); err != nil {
		t.Fatalf("the contract's 200: %v", err)
	}
}
