package sandbox

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// Server side of the outcomes extension, over raw HTTP.

// placeRaw places a valid bid on posting id as token and returns it.
func placeRaw(t *testing.T, s *Server, base, token, id string) wireBid {
	t.Helper()
	sp, ok := s.postings.get(id)
	if !ok {
		t.Fatalf("no posting %s", id)
	}
	a := do(t, "POST", base+"/v1/postings/"+id+"/bids", token, "key-"+id+"-"+token, bidBody(sp.p.Budget.Max, sp.p.Budget.Currency, 1))
	if a.status != http.StatusCreated {
		t.Fatalf("bid on %s: %d %s", id, a.status, a.body)
	}
	return *decodeInto[wireBidAnswer](t, a).Bid
}

func statusesRaw(t *testing.T, base, token string, ids ...string) (int, map[string]wireBidStatus) {
	t.Helper()
	a := do(t, "GET", base+"/v1/bids/status?"+url.Values{"id": ids}.Encode(), token, "", nil)
	if a.status != http.StatusOK {
		return a.status, nil
	}
	out := map[string]wireBidStatus{}
	for _, st := range decodeInto[wireStatuses](t, a).Statuses {
		if _, dup := out[st.ID]; dup {
			t.Fatalf("bid %s answered twice", st.ID)
		}
		out[st.ID] = st
	}
	return a.status, out
}

func TestDecideIsAFunctionOfSeedAndBid(t *testing.T) {
	const n = 4000
	for _, rate := range []float64{0, 0.2, 0.5, 1} {
		awarded := 0
		for i := range n {
			p := postingID(uint64(i + 1))
			o := Decide(7, rate, p, "acct-a")
			if o != Decide(7, rate, p, "acct-a") {
				t.Fatalf("Decide(%s) is not repeatable", p)
			}
			if o != marketplace.OutcomeAwarded && o != marketplace.OutcomeRejected {
				t.Fatalf("Decide(%s) = %q", p, o)
			}
			if o == marketplace.OutcomeAwarded {
				awarded++
			}
		}
		got := float64(awarded) / n
		if (rate == 0 || rate == 1) && got != rate {
			t.Fatalf("rate %v: awarded fraction %v, want exactly it", rate, got)
		}
		if d := got - rate; d > 0.03 || d < -0.03 {
			t.Fatalf("rate %v: awarded fraction %v", rate, got)
		}
	}
	// The seed and the account change the decisions, not just the rate.
	diffSeed, diffAcct := 0, 0
	for i := range 200 {
		p := postingID(uint64(i + 1))
		if Decide(1, 0.5, p, "acct-a") != Decide(2, 0.5, p, "acct-a") {
			diffSeed++
		}
		if Decide(1, 0.5, p, "acct-a") != Decide(1, 0.5, p, "acct-b") {
			diffAcct++
		}
	}
	if diffSeed < 50 || diffAcct < 50 {
		t.Fatalf("of 200 postings, %d decided differently under another seed and %d for another account", diffSeed, diffAcct)
	}
}

func TestBidsAreDecidedAfterDecideAfter(t *testing.T) {
	clock := newFakeClock()
	const n = 40
	s, hs := startServer(t, ServerConfig{Postings: n, DecideAfter: time.Hour, AwardRate: 0.5, Seed: 5, Now: clock.Now})
	account := AccountFromToken(testToken)
	var ids []string
	created := clock.Now()
	for i := range n {
		ids = append(ids, placeRaw(t, s, hs.URL, testToken, postingID(uint64(i+1))).ID)
	}

	_, got := statusesRaw(t, hs.URL, testToken, ids...)
	for _, id := range ids {
		if st := got[id]; st.Status != wirePending || !st.ChangedAt.Equal(created) {
			t.Fatalf("before decide_after: %+v, want pending since %s", st, created)
		}
	}
	clock.Advance(time.Hour - time.Nanosecond)
	if _, got = statusesRaw(t, hs.URL, testToken, ids[0]); got[ids[0]].Status != wirePending {
		t.Fatalf("decided before decide_after: %+v", got[ids[0]])
	}

	clock.Advance(time.Nanosecond)
	_, got = statusesRaw(t, hs.URL, testToken, ids...)
	var awarded, rejected int64
	for i, id := range ids {
		want := wireOutcome(Decide(5, 0.5, postingID(uint64(i+1)), account))
		if st := got[id]; st.Status != want || !st.ChangedAt.Equal(created.Add(time.Hour)) || st.PostingID != postingID(uint64(i+1)) {
			t.Fatalf("after decide_after: %+v, want %s at %s", st, want, created.Add(time.Hour))
		}
		if got[id].Status == wireAwarded {
			awarded++
		} else {
			rejected++
		}
	}
	if awarded == 0 || rejected == 0 {
		t.Fatalf("awarded %d, rejected %d of %d at rate 0.5", awarded, rejected, n)
	}
	st := fetchStats(t, hs.URL)
	if st.AwardedBids != awarded || st.RejectedBids != rejected || st.RetractedBids != 0 || st.Bids != n {
		t.Fatalf("stats %+v, want %d awarded and %d rejected", st, awarded, rejected)
	}
	truth := s.BidOutcomes()
	if len(truth) != n {
		t.Fatalf("BidOutcomes: %d, want %d", len(truth), n)
	}
	for i, o := range truth {
		if o.BidID != ids[i] || o.Account != account || wireOutcome(o.Outcome) != got[o.BidID].Status {
			t.Fatalf("BidOutcomes[%d] = %+v, served %+v", i, o, got[o.BidID])
		}
	}
}

func TestStatusesAnswerOnlyTheAccountsOwnBids(t *testing.T) {
	s, hs := startServer(t, ServerConfig{Postings: 1, Tokens: []string{testToken, "other-token"}})
	mine := placeRaw(t, s, hs.URL, testToken, "p-000001")
	theirs := placeRaw(t, s, hs.URL, "other-token", "p-000001")

	_, got := statusesRaw(t, hs.URL, testToken, mine.ID, theirs.ID, "b-99999999", mine.ID)
	if len(got) != 1 || got[mine.ID].Status != wirePending {
		t.Fatalf("statuses %+v: want only this account's bid, once", got)
	}
	for name, q := range map[string]string{
		"no id":      "",
		"empty id":   "id=",
		"101 ids":    strings.Repeat("id=b-1&", 101),
		"control id": "id=b%0A1",
	} {
		a := do(t, "GET", hs.URL+"/v1/bids/status?"+q, testToken, "", nil)
		if e := decodeInto[wireError](t, a); a.status != http.StatusBadRequest || e.Error != codeBadRequest {
			t.Fatalf("%s: %d %s, want 400 bad_request", name, a.status, a.body)
		}
	}
	if a := do(t, "GET", hs.URL+"/v1/bids/status?id=b-1", "", "", nil); a.status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", a.status)
	}
}

func TestRetractTable(t *testing.T) {
	clock := newFakeClock()
	s, hs := startServer(t, ServerConfig{Postings: 3, DecideAfter: time.Hour, AwardRate: 1, Now: clock.Now, Tokens: []string{testToken, "other-token"}})
	b1 := placeRaw(t, s, hs.URL, testToken, "p-000001")
	b2 := placeRaw(t, s, hs.URL, testToken, "p-000002")
	retract := func(token, id string, body any) (rawAnswer, wireRetractAnswer) {
		a := do(t, "POST", hs.URL+"/v1/bids/"+id+"/retract", token, "", body)
		var ans wireRetractAnswer
		if a.status == http.StatusOK || a.status == http.StatusConflict {
			ans = decodeInto[wireRetractAnswer](t, a)
		}
		return a, ans
	}

	clock.Advance(time.Minute)
	a, ans := retract(testToken, b1.ID, wireRetractRequest{PostingID: "p-000001"})
	if a.status != http.StatusOK || ans.Status != wireRetracted || ans.Bid == nil || ans.Bid.ID != b1.ID || !ans.ChangedAt.Equal(clock.Now()) {
		t.Fatalf("retract: %d %s", a.status, a.body)
	}
	retractedAt := clock.Now()
	clock.Advance(time.Minute)
	// Again: the same answer, nothing changes (the first time counts).
	a, ans = retract(testToken, b1.ID, nil)
	if a.status != http.StatusOK || ans.Status != wireRetracted || !ans.ChangedAt.Equal(retractedAt) {
		t.Fatalf("retract again: %d %s", a.status, a.body)
	}
	for name, c := range map[string]struct {
		token, id string
		body      any
	}{
		"unknown bid":   {testToken, "b-99999999", nil},
		"other account": {"other-token", b2.ID, nil},
		"wrong posting": {testToken, b2.ID, wireRetractRequest{PostingID: "p-000003"}},
	} {
		if a, _ := retract(c.token, c.id, c.body); a.status != http.StatusNotFound {
			t.Fatalf("%s: %d %s, want 404", name, a.status, a.body)
		}
	}
	if a := do(t, "POST", hs.URL+"/v1/bids/"+b2.ID+"/retract", testToken, "", []int{1}); a.status != http.StatusBadRequest {
		t.Fatalf("body not an object: %d %s", a.status, a.body)
	}

	// Decided: too late, and the retracted one stays retracted.
	clock.Advance(time.Hour)
	a, ans = retract(testToken, b2.ID, nil)
	if a.status != http.StatusConflict || ans.Error != codeRetractTooLate || ans.Status != wireAwarded {
		t.Fatalf("retract after the award: %d %s", a.status, a.body)
	}
	_, got := statusesRaw(t, hs.URL, testToken, b1.ID, b2.ID)
	if got[b1.ID].Status != wireRetracted || !got[b1.ID].ChangedAt.Equal(retractedAt) || got[b2.ID].Status != wireAwarded {
		t.Fatalf("statuses after retract and award: %+v", got)
	}
	// A retracted bid is still a bid: FindBid's list keeps it.
	if bids := decodeInto[wireBids](t, do(t, "GET", hs.URL+"/v1/bids?posting_id=p-000001", testToken, "", nil)); len(bids.Bids) != 1 {
		t.Fatalf("GET /v1/bids after retract: %+v", bids)
	}
	if st := fetchStats(t, hs.URL); st.RetractedBids != 1 || st.AwardedBids != 1 || st.RejectedBids != 0 || st.Bids != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRetractFaults(t *testing.T) {
	s, hs := startServer(t, ServerConfig{Postings: 1, ErrorRate: 1})
	b := placeDirect(t, s, testToken, "p-000001")
	if a := do(t, "POST", hs.URL+"/v1/bids/"+b.ID+"/retract", testToken, "", nil); a.status != http.StatusServiceUnavailable {
		t.Fatalf("error_rate: %d", a.status)
	}
	if o := s.BidOutcomes()[0]; o.Outcome != marketplace.OutcomePending {
		t.Fatalf("a 503 retracted the bid: %+v", o)
	}
}

// placeDirect creates a bid without HTTP, for servers whose faults would
// refuse it.
func placeDirect(t testing.TB, s *Server, token, id string) wireBid {
	t.Helper()
	sp, ok := s.postings.get(id)
	if !ok {
		t.Fatalf("no posting %s", id)
	}
	outcome, b := s.bids.place(bidAttempt{
		account: AccountFromToken(token), postingID: id, key: "direct-" + id,
		req: bidBody(sp.p.Budget.Max, sp.p.Budget.Currency, 1), now: s.cfg.Now(),
	})
	if outcome != bidCreated {
		t.Fatalf("place %s: outcome %v", id, outcome)
	}
	return b
}

func TestOutcomeFlags(t *testing.T) {
	cfg, err := parseFlags(t)
	if err != nil || cfg.DecideAfter != 0 || cfg.AwardRate != DefaultAwardRate {
		t.Fatalf("defaults %v %v, %v", cfg.DecideAfter, cfg.AwardRate, err)
	}
	cfg, err = parseFlags(t, "--decide-after", "90s", "--award-rate", "0.75")
	if err != nil || cfg.DecideAfter != 90*time.Second || cfg.AwardRate != 0.75 {
		t.Fatalf("parsed %v %v, %v", cfg.DecideAfter, cfg.AwardRate, err)
	}
	for flag, args := range map[string][]string{
		"--award-rate":   {"--award-rate", "1.5"},
		"--decide-after": {"--decide-after", "-1s"},
	} {
		if _, err := parseFlags(t, args...); err == nil || !strings.HasPrefix(err.Error(), flag+":") {
			t.Errorf("%v: error %v, want one naming %s", args, err, flag)
		}
	}
}
