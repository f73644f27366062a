package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// Contract tests of the outcomes extension: the adapter against the server
// over real HTTP, one row of docs/sandbox.md "Extensions (additive)" at a
// time.

// requestLog counts what reaches the server, by method and path.
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.seen
	l.seen = nil
	return out
}

// outcomeServer is contractServer with a request log in front.
func outcomeServer(t *testing.T, cfg ServerConfig) (*Server, *Adapter, *requestLog, *errLog) {
	t.Helper()
	cfg.Tokens = append(cfg.Tokens, secretToken, testToken)
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reqs := &requestLog{}
	hs := httptest.NewServer(reqs.wrap(s))
	log := &errLog{}
	t.Cleanup(func() {
		hs.Close()
		s.Close()
		for _, err := range log.errs {
			if strings.Contains(err.Error(), secretToken) {
				t.Errorf("error leaks the token: %v", err)
			}
		}
	})
	return s, newTestAdapter(t, hs.URL, secretToken, 5*time.Second), reqs, log
}

func TestContractPlaceBidSendsOnlyTheBid(t *testing.T) {
	s, a, reqs, log := outcomeServer(t, ServerConfig{Postings: 1, DecideAfter: time.Minute})
	if _, err := a.PlaceBid(context.Background(), "p-000001", bidFor(t, s, a, "p-000001")); log.add(err) != nil {
		t.Fatal(err)
	}
	if got := reqs.take(); len(got) != 1 || got[0] != "POST /v1/postings/p-000001/bids" {
		t.Fatalf("PlaceBid sent %q, want the bid alone", got)
	}
}

func TestContractBidStatuses(t *testing.T) {
	clock := newFakeClock()
	const n = 120 // more than one batch
	s, a, reqs, log := outcomeServer(t, ServerConfig{Postings: n + 1, DecideAfter: 30 * time.Minute, AwardRate: 0.3, Seed: 11, Now: clock.Now})
	ctx := context.Background()
	var placed []marketplace.PlacedBid
	for i := range n {
		id := postingID(uint64(i + 1))
		pb, err := a.PlaceBid(ctx, id, bidFor(t, s, a, id))
		if log.add(err) != nil {
			t.Fatal(err)
		}
		placed = append(placed, pb)
	}
	created := clock.Now()
	max := a.MaxStatusBatch()
	if max != 100 {
		t.Fatalf("MaxStatusBatch = %d", max)
	}
	statuses := func() []marketplace.BidStatus {
		t.Helper()
		reqs.take()
		var out []marketplace.BidStatus
		for start := 0; start < len(placed); start += max {
			batch := placed[start:min(start+max, len(placed))]
			got, err := a.BidStatuses(ctx, batch)
			if log.add(err) != nil {
				t.Fatalf("BidStatuses: %v", err)
			}
			if len(got) != len(batch) {
				t.Fatalf("%d statuses for %d bids", len(got), len(batch))
			}
			out = append(out, got...)
		}
		if r := reqs.take(); len(r) != 2 || r[0] != "GET /v1/bids/status" {
			t.Fatalf("requests %q, want one GET per batch", r)
		}
		return out
	}

	// Pending until decide_after.
	for i, st := range statuses() {
		if st.BidID != placed[i].ID || st.PostingID != placed[i].PostingID || st.Outcome != marketplace.OutcomePending || !st.ChangedAt.Equal(created) || st.Text != "pending" {
			t.Fatalf("status %d: %+v, want pending since %s", i, st, created)
		}
	}
	// Then the seeded truth, which a test can compute.
	clock.Advance(30 * time.Minute)
	awarded := 0
	for i, st := range statuses() {
		want := Decide(11, 0.3, placed[i].PostingID, a.Account())
		if st.Outcome != want || !st.ChangedAt.Equal(created.Add(30*time.Minute)) || !st.Outcome.Decided() {
			t.Fatalf("status %d: %+v, want %s", i, st, want)
		}
		if st.Outcome == marketplace.OutcomeAwarded {
			awarded++
		}
	}
	if st := s.Stats(); st.AwardedBids != int64(awarded) || st.RejectedBids != int64(n-awarded) {
		t.Fatalf("stats %+v, adapter saw %d awarded of %d", st, awarded, n)
	}

	// Bids the marketplace does not report: unknown, not an error. The
	// empty batch sends nothing.
	other := newTestAdapter(t, a.base.String(), testToken, time.Second)
	got, err := other.BidStatuses(ctx, []marketplace.PlacedBid{placed[0], {ID: "b-77777777", PostingID: "p-000001"}})
	if log.add(err) != nil || len(got) != 2 || got[0].Outcome != marketplace.OutcomeUnknown || got[1].Outcome != marketplace.OutcomeUnknown || got[0].Text != "" {
		t.Fatalf("another account's and an unknown bid: %+v, %v", got, err)
	}
	reqs.take()
	if got, err := a.BidStatuses(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty batch: %+v, %v", got, err)
	}
	if r := reqs.take(); len(r) != 0 {
		t.Fatalf("empty batch sent %q", r)
	}
}

func TestContractBidStatusesRefusesBadBatchesWithoutSending(t *testing.T) {
	_, a, reqs, _ := outcomeServer(t, ServerConfig{Postings: 1})
	ctx := context.Background()
	big := make([]marketplace.PlacedBid, a.MaxStatusBatch()+1)
	for i := range big {
		big[i] = marketplace.PlacedBid{ID: fmt.Sprintf("b-%d", i), PostingID: "p-000001"}
	}
	for name, bids := range map[string][]marketplace.PlacedBid{
		"over the batch size": big,
		"empty id":            {{ID: "", PostingID: "p-000001"}},
		"control byte":        {{ID: "b-\n1", PostingID: "p-000001"}},
		"repeated id":         {{ID: "b-1"}, {ID: "b-1"}},
	} {
		_, err := a.BidStatuses(ctx, bids)
		wantClass(t, err, marketplace.ErrPermanent, ReasonInvalidInput)
		_ = name
	}
	if r := reqs.take(); len(r) != 0 {
		t.Fatalf("bad batches sent %q", r)
	}
}

func TestContractRetractTable(t *testing.T) {
	clock := newFakeClock()
	s, a, reqs, log := outcomeServer(t, ServerConfig{Postings: 4, DecideAfter: time.Hour, AwardRate: 0.5, Seed: 2, Now: clock.Now})
	ctx := context.Background()
	var placed []marketplace.PlacedBid
	for i := range 3 {
		id := postingID(uint64(i + 1))
		pb, err := a.PlaceBid(ctx, id, bidFor(t, s, a, id))
		if log.add(err) != nil {
			t.Fatal(err)
		}
		placed = append(placed, pb)
	}
	reqs.take()

	// 200: retracted, with one request; again: still success.
	if err := a.RetractBid(ctx, placed[0].PostingID, placed[0]); log.add(err) != nil {
		t.Fatalf("retract: %v", err)
	}
	if r := reqs.take(); len(r) != 1 || r[0] != "POST /v1/bids/"+placed[0].ID+"/retract" {
		t.Fatalf("retract sent %q, want one POST", r)
	}
	if err := a.RetractBid(ctx, placed[0].PostingID, placed[0]); log.add(err) != nil {
		t.Fatalf("retracting a retracted bid: %v, want success", err)
	}
	st, err := a.BidStatuses(ctx, placed[:1])
	if log.add(err) != nil || st[0].Outcome != marketplace.OutcomeRetracted || !st[0].ChangedAt.Equal(clock.Now()) {
		t.Fatalf("status after retract: %+v, %v", st, err)
	}
	if found, ok, err := a.FindBid(ctx, placed[0].PostingID); log.add(err) != nil || !ok || found.ID != placed[0].ID {
		t.Fatalf("FindBid of a retracted bid: %+v, %v, %v; a retracted bid still exists", found, ok, err)
	}

	// 404: no such bid, and a bid named with the wrong posting.
	err = a.RetractBid(ctx, "p-000001", marketplace.PlacedBid{ID: "b-99999999"})
	wantClass(t, log.add(err), marketplace.ErrBidNotFound, codeNotFound)
	err = a.RetractBid(ctx, "p-000003", marketplace.PlacedBid{ID: placed[1].ID})
	wantClass(t, log.add(err), marketplace.ErrBidNotFound, codeNotFound)

	// 409: decided, whichever way.
	clock.Advance(time.Hour)
	for _, pb := range placed[1:] {
		err = a.RetractBid(ctx, pb.PostingID, pb)
		me := wantClass(t, log.add(err), marketplace.ErrRetractTooLate, ReasonRetractTooLate)
		want := Decide(2, 0.5, pb.PostingID, a.Account())
		if !strings.Contains(me.Error(), "the bid is "+string(want)) {
			t.Fatalf("409 for a bid that is %s: %v", want, err)
		}
	}

	// Refused before sending: a bid said to be on another posting, bad IDs.
	reqs.take()
	err = a.RetractBid(ctx, "p-000002", placed[0])
	wantClass(t, err, marketplace.ErrPermanent, ReasonInvalidInput)
	for _, id := range []string{"", "..", "b\n1"} {
		wantClass(t, a.RetractBid(ctx, "p-000001", marketplace.PlacedBid{ID: id}), marketplace.ErrPermanent, ReasonInvalidInput)
	}
	if r := reqs.take(); len(r) != 0 {
		t.Fatalf("refused retracts sent %q", r)
	}
	if st := s.Stats(); st.RetractedBids != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestContractRetractFaults(t *testing.T) {
	ctx := context.Background()

	t.Run("ambiguous_rate: stored, then ambiguous; calling again resolves it", func(t *testing.T) {
		s, a, _, log := outcomeServer(t, ServerConfig{Postings: 40, AmbiguousRate: 1, Idempotency: IdempotencyOn, Seed: 4})
		for i := range 40 {
			id := postingID(uint64(i + 1))
			b := placeDirect(t, s, secretToken, id)
			pb := marketplace.PlacedBid{ID: b.ID, PostingID: id}
			wantClass(t, log.add(a.RetractBid(ctx, id, pb)), marketplace.ErrAmbiguous, "")
			if err := a.RetractBid(ctx, id, pb); log.add(err) != nil {
				t.Fatalf("retract again after an ambiguous answer: %v", err)
			}
		}
		if s.faults.ambiguous504.Load() == 0 || s.faults.ambiguousDrops.Load() == 0 {
			t.Fatalf("504s %d, drops %d: want both kinds exercised", s.faults.ambiguous504.Load(), s.faults.ambiguousDrops.Load())
		}
		if st := s.Stats(); st.RetractedBids != 40 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("error_rate: transient, nothing done", func(t *testing.T) {
		s, a, _, log := outcomeServer(t, ServerConfig{Postings: 1, ErrorRate: 1})
		b := placeDirect(t, s, secretToken, "p-000001")
		pb := marketplace.PlacedBid{ID: b.ID, PostingID: "p-000001"}
		wantClass(t, log.add(a.RetractBid(ctx, "p-000001", pb)), marketplace.ErrTransient, codeUnavailable)
		_, err := a.BidStatuses(ctx, []marketplace.PlacedBid{pb})
		wantClass(t, log.add(err), marketplace.ErrTransient, codeUnavailable)
		if st := s.Stats(); st.RetractedBids != 0 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("rate_limit_rate", func(t *testing.T) {
		_, a, _, log := outcomeServer(t, ServerConfig{Postings: 1, RateLimitRate: 1, RetryAfter: 3 * time.Second})
		pb := marketplace.PlacedBid{ID: "b-1", PostingID: "p-000001"}
		for _, err := range []error{a.RetractBid(ctx, "p-000001", pb), func() error { _, err := a.BidStatuses(ctx, []marketplace.PlacedBid{pb}); return err }()} {
			wantClass(t, log.add(err), marketplace.ErrRateLimited, codeRateLimited)
			if d, ok := marketplace.RetryAfter(err); !ok || d != 3*time.Second {
				t.Fatalf("RetryAfter %s, %v", d, ok)
			}
		}
	})

	t.Run("unauthorized", func(t *testing.T) {
		_, hs := startServer(t, ServerConfig{Postings: 1})
		a := newTestAdapter(t, hs.URL, "wrong-token", time.Second)
		pb := marketplace.PlacedBid{ID: "b-1", PostingID: "p-000001"}
		wantClass(t, a.RetractBid(ctx, "p-000001", pb), marketplace.ErrPermanent, codeUnauthorized)
		_, err := a.BidStatuses(ctx, []marketplace.PlacedBid{pb})
		wantClass(t, err, marketplace.ErrPermanent, codeUnauthorized)
	})

	t.Run("latency beyond the timeout: ambiguous retract, transient read", func(t *testing.T) {
		s, hs := startServer(t, ServerConfig{Postings: 1, Tokens: []string{secretToken}, Latency: Latency{Min: 2 * time.Second, Max: 2 * time.Second}})
		slow := newTestAdapter(t, hs.URL, secretToken, 50*time.Millisecond)
		b := placeDirect(t, s, secretToken, "p-000001")
		pb := marketplace.PlacedBid{ID: b.ID, PostingID: "p-000001"}
		wantClass(t, slow.RetractBid(ctx, "p-000001", pb), marketplace.ErrAmbiguous, ReasonNoAnswer)
		_, err := slow.BidStatuses(ctx, []marketplace.PlacedBid{pb})
		wantClass(t, err, marketplace.ErrTransient, ReasonNoAnswer)
	})

	t.Run("connection refused: not sent", func(t *testing.T) {
		hs := httptest.NewServer(http.NotFoundHandler())
		hs.Close()
		a := newTestAdapter(t, hs.URL, secretToken, time.Second)
		err := a.RetractBid(ctx, "p-000001", marketplace.PlacedBid{ID: "b-1"})
		wantClass(t, err, marketplace.ErrTransient, ReasonNotSent)
		if errors.Is(err, marketplace.ErrAmbiguous) {
			t.Fatal("both transient and ambiguous")
		}
	})
}
