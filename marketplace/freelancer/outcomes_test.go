package freelancer

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// Outcomes and retracts against the fake server, in the shapes public
// Freelancer code shows (docs/freelancer.md, "Outcomes and retracts").

// placeN places a bid on projects 1..n through the adapter.
func placeN(t *testing.T, f *fakeServer, a *Adapter, n int) []marketplace.PlacedBid {
	t.Helper()
	var out []marketplace.PlacedBid
	for i := 1; i <= n; i++ {
		f.add(project(int64(i), 1_700_000_000+int64(i)))
		pb, err := a.PlaceBid(ctx, strconv.Itoa(i), marketplace.Bid{Amount: 100, Currency: "USD", Proposal: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pb)
	}
	return out
}

func bidNum(t *testing.T, pb marketplace.PlacedBid) int64 {
	t.Helper()
	id, err := strconv.ParseInt(pb.ID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestBidStatusesRequestShapeAndBatch(t *testing.T) {
	f := newFakeServer(t)
	a := f.bidder(t, nil)
	placed := placeN(t, f, a, 3)
	if a.MaxStatusBatch() != MaxStatusBatch || MaxStatusBatch != 50 {
		t.Fatalf("MaxStatusBatch %d", a.MaxStatusBatch())
	}
	before := len(f.reqs())
	got, err := a.BidStatuses(ctx, placed)
	if err != nil || len(got) != 3 {
		t.Fatalf("%+v, %v", got, err)
	}
	reqs := f.reqs()[before:]
	if len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].URL.Path != pathBids {
		t.Fatalf("requests %v, want one GET %s", reqs, pathBids)
	}
	q := reqs[0].URL.Query()
	if strings.Join(q["bids[]"], ",") != placed[0].ID+","+placed[1].ID+","+placed[2].ID || q.Get("limit") != "3" || reqs[0].Header.Get(headerToken) != testToken {
		t.Fatalf("query %v", q)
	}

	// Refused before anything is sent.
	big := make([]marketplace.PlacedBid, MaxStatusBatch+1)
	for i := range big {
		big[i] = marketplace.PlacedBid{ID: strconv.Itoa(i + 1), PostingID: "1"}
	}
	before = len(f.reqs())
	for name, bids := range map[string][]marketplace.PlacedBid{
		"over the batch": big,
		"bid id":         {{ID: "b-1", PostingID: "1"}},
		"leading zero":   {{ID: "07", PostingID: "1"}},
		"repeated":       {{ID: "7", PostingID: "1"}, {ID: "7", PostingID: "1"}},
		"posting id":     {{ID: "7", PostingID: "p-1"}},
	} {
		_, err := a.BidStatuses(ctx, bids)
		checkClass(t, err, marketplace.ErrPermanent, ReasonInvalidInput)
		_ = name
	}
	if n := len(f.reqs()) - before; n != 0 {
		t.Fatalf("refused batches sent %d requests", n)
	}
	if got, err := a.BidStatuses(ctx, nil); err != nil || len(got) != 0 || len(f.reqs()) != before {
		t.Fatalf("empty batch: %+v, %v", got, err)
	}
}

func TestBidStatusesMapping(t *testing.T) {
	f := newFakeServer(t)
	a := f.bidder(t, nil)
	placed := placeN(t, f, a, 8)
	const at = 1_767_225_600
	f.setAward(bidNum(t, placed[1]), "pending", at)
	f.setAward(bidNum(t, placed[2]), "awarded", at+1)
	f.setAward(bidNum(t, placed[3]), "rejected", at+2)
	f.setAward(bidNum(t, placed[4]), "revoked", at+3)
	f.setAward(bidNum(t, placed[5]), "canceled", at+4)
	f.setAward(bidNum(t, placed[6]), "frozen", at+5)
	if err := a.RetractBid(ctx, placed[7].PostingID, placed[7]); err != nil {
		t.Fatal(err)
	}
	// Somebody else's bid with an ID we ask about, and an ID Freelancer
	// does not return.
	f.addBid(fakeBid{ID: 5555, ProjectID: 1, BidderID: 99, AwardStatus: "awarded"})
	asked := append(append([]marketplace.PlacedBid(nil), placed...), marketplace.PlacedBid{ID: "5555", PostingID: "1"}, marketplace.PlacedBid{ID: "6666", PostingID: "1"})

	got, err := a.BidStatuses(ctx, asked)
	if err != nil || len(got) != len(asked) {
		t.Fatalf("%+v, %v", got, err)
	}
	want := []struct {
		outcome marketplace.Outcome
		changed int64
		text    string
	}{
		{marketplace.OutcomePending, 0, "frontend_bid_status=active"},
		{marketplace.OutcomeAwarded, at, "award_status=pending frontend_bid_status=active"},
		{marketplace.OutcomeAwarded, at + 1, "award_status=awarded frontend_bid_status=active"},
		{marketplace.OutcomeRetracted, at + 2, "award_status=rejected frontend_bid_status=active"},
		{marketplace.OutcomeRejected, at + 3, "award_status=revoked frontend_bid_status=active"},
		{marketplace.OutcomeRejected, at + 4, "award_status=canceled frontend_bid_status=active"},
		{marketplace.OutcomeUnknown, at + 5, "award_status=frozen frontend_bid_status=active"},
		{marketplace.OutcomeRetracted, 0, "retracted frontend_bid_status=active"},
		{marketplace.OutcomeUnknown, 0, ""},
		{marketplace.OutcomeUnknown, 0, ""},
	}
	for i, w := range want {
		st := got[i]
		wantAt := time.Time{}
		if w.changed != 0 {
			wantAt = time.Unix(w.changed, 0).UTC()
		}
		if st.BidID != asked[i].ID || st.PostingID != asked[i].PostingID || st.Outcome != w.outcome || !st.ChangedAt.Equal(wantAt) || st.Text != w.text {
			t.Errorf("bid %d: %+v, want %s at %v %q", i, st, w.outcome, wantAt, w.text)
		}
	}
}

func TestBidStatusesReadsSelfFirst(t *testing.T) {
	f := newFakeServer(t)
	placed := placeN(t, f, f.bidder(t, nil), 1)
	a := f.adapter(t, nil) // a new process: the account is not resolved yet
	before := len(f.reqs())
	got, err := a.BidStatuses(ctx, placed)
	if err != nil || got[0].Outcome != marketplace.OutcomePending {
		t.Fatalf("%+v, %v", got, err)
	}
	if reqs := f.reqs()[before:]; len(reqs) != 2 || reqs[0].URL.Path != pathSelf || reqs[1].URL.Path != pathBids {
		t.Fatalf("requests %v", reqs)
	}
}

func TestRetractTable(t *testing.T) {
	f := newFakeServer(t)
	a := f.bidder(t, nil)
	placed := placeN(t, f, a, 4)

	// Success: one PUT, as the SDK sends it.
	before := len(f.reqs())
	if err := a.RetractBid(ctx, placed[0].PostingID, placed[0]); err != nil {
		t.Fatal(err)
	}
	reqs := f.reqs()[before:]
	if len(reqs) != 1 || reqs[0].Method != http.MethodPut || reqs[0].URL.Path != pathBids+placed[0].ID+"/" ||
		reqs[0].URL.Query().Get("action") != "retract" || reqs[0].Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Fatalf("requests %v", reqs)
	}
	if body, _ := io.ReadAll(reqs[0].Body); len(body) != 0 {
		t.Fatalf("retract body %q", body)
	}

	// Again: Freelancer refuses with a code nobody documents; the bid reads
	// as retracted, so it is success (one PUT, one GET).
	before = len(f.reqs())
	if err := a.RetractBid(ctx, placed[0].PostingID, placed[0]); err != nil {
		t.Fatalf("retracting a retracted bid: %v", err)
	}
	if reqs := f.reqs()[before:]; len(reqs) != 2 || reqs[0].Method != http.MethodPut || reqs[1].Method != http.MethodGet {
		t.Fatalf("requests %v, want the PUT and one look-up", reqs)
	}

	// Too late: awarded (offered or accepted) or decided against.
	for i, status := range map[int]string{1: "pending", 2: "revoked"} {
		f.setAward(bidNum(t, placed[i]), status, 1_767_225_600)
		err := a.RetractBid(ctx, placed[i].PostingID, placed[i])
		me := checkClass(t, err, marketplace.ErrRetractTooLate, ReasonRetractTooLate)
		if !strings.Contains(me.Error(), "award_status="+status) || !strings.Contains(me.Error(), "MADE_UP_NOT_RETRACTABLE") {
			t.Fatalf("too late: %v", err)
		}
	}

	// Not found: no look-up needed.
	before = len(f.reqs())
	checkClass(t, a.RetractBid(ctx, "1", marketplace.PlacedBid{ID: "424242"}), marketplace.ErrBidNotFound, ReasonNotFound)
	if n := len(f.reqs()) - before; n != 1 {
		t.Fatalf("not found: %d requests", n)
	}

	// Refused without a request.
	before = len(f.reqs())
	for name, c := range map[string]struct {
		posting string
		bid     marketplace.PlacedBid
	}{
		"bid id":        {"1", marketplace.PlacedBid{ID: "b-1"}},
		"posting id":    {"p-1", marketplace.PlacedBid{ID: "1"}},
		"other posting": {"2", placed[0]},
		"path escape":   {"1", marketplace.PlacedBid{ID: "../1"}},
	} {
		checkClass(t, a.RetractBid(ctx, c.posting, c.bid), marketplace.ErrPermanent, ReasonInvalidInput)
		_ = name
	}
	if n := len(f.reqs()) - before; n != 0 {
		t.Fatalf("refused retracts sent %d requests", n)
	}
}

func TestRetractFaults(t *testing.T) {
	for _, c := range []struct {
		fault   fault
		class   error
		reason  string
		applied bool
	}{
		{faultStoreDrop, marketplace.ErrAmbiguous, ReasonNoAnswer, true},
		{faultStore502, marketplace.ErrAmbiguous, "http_502", true},
		{faultMalformed200, marketplace.ErrAmbiguous, ReasonMalformed, true},
		// Freelancer's 503 promises nothing: ambiguous, though this one
		// happened to do nothing.
		{fault503, marketplace.ErrAmbiguous, "http_503", false},
		{fault429, marketplace.ErrRateLimited, ReasonRateLimited, false},
	} {
		t.Run(fmt.Sprint(c.reason), func(t *testing.T) {
			f := newFakeServer(t)
			a := f.bidder(t, nil)
			placed := placeN(t, f, a, 1)
			f.onPut = func(int64) fault { return c.fault }
			checkClass(t, a.RetractBid(ctx, "1", placed[0]), c.class, c.reason)
			st, err := a.BidStatuses(ctx, placed)
			if err != nil || (st[0].Outcome == marketplace.OutcomeRetracted) != c.applied {
				t.Fatalf("after the fault: %+v, %v; retract applied = %v", st, err, c.applied)
			}
			// Calling again resolves every one of them.
			f.onPut = nil
			if err := a.RetractBid(ctx, "1", placed[0]); err != nil {
				t.Fatalf("retract again: %v", err)
			}
		})
	}
}

// cannedCase is one canned answer and the error it must give.
type cannedCase struct {
	name   string
	status int
	body   string
	class  error
	reason string
}

func TestMalformedStatusAnswers(t *testing.T) {
	asked := []marketplace.PlacedBid{{ID: "7", PostingID: "12"}, {ID: "8", PostingID: "12"}}
	ok := func(bids string) string { return `{"status":"success","result":{"bids":[` + bids + `]}}` }
	b7 := `{"id":7,"project_id":12,"bidder_id":4242,"award_status":"awarded","award_status_changed_time":1767225600}`
	many := strings.TrimSuffix(strings.Repeat(`{"id":1},`, MaxStatusBatch+1), ",")
	for _, c := range []cannedCase{
		{"not json", 200, `{"status":"success","result":{"bids":[`, marketplace.ErrTransient, ReasonMalformed},
		{"html", 200, `<html/>`, marketplace.ErrTransient, ReasonMalformed},
		{"no bids", 200, `{"status":"success","result":{}}`, marketplace.ErrPermanent, ReasonInvalid},
		{"bids not a list", 200, `{"status":"success","result":{"bids":{"7":{}}}}`, marketplace.ErrPermanent, ReasonInvalid},
		{"too many bids", 200, ok(many), marketplace.ErrPermanent, ReasonInvalid},
		{"no status", 200, `{"result":{"bids":[]}}`, marketplace.ErrPermanent, ReasonInvalid},
		{"error envelope", 200, envBody("NOT_AUTHENTICATED", "no"), marketplace.ErrPermanent, ReasonUnauthorized},
		{"top level list", 200, `[` + b7 + `]`, marketplace.ErrPermanent, ReasonInvalid},
		{"401", 401, envBody("RestExceptionCodes.NOT_AUTHENTICATED", "no"), marketplace.ErrPermanent, ReasonUnauthorized},
		{"429", 429, envBody("TOO_MANY_REQUESTS", "slow"), marketplace.ErrRateLimited, ReasonRateLimited},
		{"500", 500, `oops`, marketplace.ErrTransient, "http_500"},
		{"huge", 200, ok(`{"description":"` + strings.Repeat("x", maxStatusAnswerBytes) + `"}`), marketplace.ErrTransient, ReasonTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := errorServer(t, c.status, nil, c.body).BidStatuses(ctx, asked)
			checkClass(t, err, c.class, c.reason)
			if got != nil {
				t.Fatalf("statuses with an error: %+v", got)
			}
		})
	}

	// Lenient where the rest still counts: a bid of the wrong shape, one
	// of another project, and a repeat are skipped; members nobody asked
	// for are passed over.
	for name, body := range map[string]string{
		"wrong types":      ok(b7 + `,{"id":8,"project_id":12,"award_status":7,"retracted":"yes","bidder_id":{}}`),
		"another project":  ok(b7 + `,{"id":8,"project_id":13,"award_status":"awarded"}`),
		"repeat":           ok(b7 + `,` + strings.Replace(b7, `"awarded"`, `"revoked"`, 1)),
		"extra members":    `{"request_id":"r","status":"success","result":{"users":{"1":{"x":[1,2]}},"bids":[` + b7 + `],"projects":null}}`,
		"id as a string":   ok(strings.Replace(b7, `"id":7`, `"id":"7"`, 1)),
		"no bidder given":  ok(strings.Replace(b7, `"bidder_id":4242,`, ``, 1)),
		"another bidder 8": ok(b7 + `,{"id":8,"project_id":12,"bidder_id":99,"award_status":"awarded"}`),
		"second list":      `{"status":"success","result":{"bids":[` + b7 + `],"bids":[{"id":8,"project_id":12,"award_status":"awarded"}]}}`,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := errorServer(t, 200, nil, body).BidStatuses(ctx, asked)
			if err != nil || len(got) != 2 {
				t.Fatalf("%+v, %v", got, err)
			}
			if got[0].Outcome != marketplace.OutcomeAwarded || !got[0].ChangedAt.Equal(time.Unix(1767225600, 0)) || got[1].Outcome != marketplace.OutcomeUnknown || got[1].BidID != "8" {
				t.Fatalf("statuses %+v", got)
			}
		})
	}
}

func TestMalformedRetractAnswers(t *testing.T) {
	for _, c := range []cannedCase{
		{"200 not json", 200, `ok`, marketplace.ErrAmbiguous, ReasonMalformed},
		{"200 error envelope", 200, envBody("BAD_FORM", "x"), marketplace.ErrAmbiguous, ReasonInvalid},
		{"200 empty", 200, ``, marketplace.ErrAmbiguous, ReasonMalformed},
		{"204", 204, ``, marketplace.ErrAmbiguous, ReasonMalformed},
		{"302", 302, ``, marketplace.ErrAmbiguous, ReasonUnexpected},
		{"500", 500, `oops`, marketplace.ErrAmbiguous, "http_500"},
		{"503", 503, envBody("", "down"), marketplace.ErrAmbiguous, "http_503"},
		{"404 plain", 404, `not here`, marketplace.ErrBidNotFound, ReasonNotFound},
		{"400 BID_NOT_FOUND", 400, envBody("ProjectExceptionCodes.BID_NOT_FOUND", "no"), marketplace.ErrBidNotFound, ReasonNotFound},
		{"401", 401, envBody("NOT_AUTHENTICATED", "no"), marketplace.ErrPermanent, ReasonUnauthorized},
		{"429", 429, envBody("TOO_MANY_REQUESTS", "slow"), marketplace.ErrRateLimited, ReasonRateLimited},
		// A refusal the look-up cannot explain (it gets the same canned
		// answer) stays a refusal.
		{"400 unknown code", 400, envBody("SOMETHING_NEW", "no"), marketplace.ErrPermanent, ReasonRetractRefused},
		{"409 no body", 409, ``, marketplace.ErrPermanent, ReasonRetractRefused},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := errorServer(t, c.status, nil, c.body).RetractBid(ctx, "12", marketplace.PlacedBid{ID: "7"})
			checkClass(t, err, c.class, c.reason)
		})
	}
	if err := errorServer(t, 200, nil, `{"status":"success"}`).RetractBid(ctx, "12", marketplace.PlacedBid{ID: "7"}); err != nil {
		t.Fatalf("the SDK's success answer: %v", err)
	}
}
