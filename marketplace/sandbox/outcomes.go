package sandbox

import (
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// Outcomes: an additive extension of the v1 contract (docs/sandbox.md,
// "Extensions (additive)"). Every bid is decided DecideAfter after it was
// created, awarded or rejected by Decide, a pure function of the seed and
// the bid, so a test can compute the truth without asking. Decisions are
// evaluated on demand against the server's clock: no goroutine, and a fake
// clock moves them.

const (
	// maxStatusIDs is how many bids one GET /v1/bids/status may ask about.
	maxStatusIDs = 100
	// maxRetractBody caps what a retract request may carry.
	maxRetractBody = 4 << 10

	codeRetractTooLate = "retract_too_late"

	wirePending   = "pending"
	wireAwarded   = "awarded"
	wireRejected  = "rejected"
	wireRetracted = "retracted"
)

// wireBidStatus is one entry of GET /v1/bids/status.
type wireBidStatus struct {
	ID        string    `json:"id"`
	PostingID string    `json:"posting_id"`
	Status    string    `json:"status"`
	ChangedAt time.Time `json:"changed_at"`
}

type wireStatuses struct {
	Statuses []wireBidStatus `json:"statuses"`
}

type wireRetractRequest struct {
	PostingID string `json:"posting_id"`
}

// wireRetractAnswer is the body of 200 and 409 answers to a retract.
type wireRetractAnswer struct {
	Error     string    `json:"error,omitempty"`
	Status    string    `json:"status"`
	ChangedAt time.Time `json:"changed_at"`
	Bid       *wireBid  `json:"bid,omitempty"`
}

// BidOutcome is the server's truth about one bid, for tests and reports.
type BidOutcome struct {
	BidID     string
	PostingID string
	Account   string
	Outcome   marketplace.Outcome // pending, awarded, rejected or retracted
	ChangedAt time.Time           // when it took this outcome (created_at while pending)
}

// Decide is the rule that awards or rejects a bid once it is decided: a
// function of the run's seed and award rate and of the bid's posting and
// account only (not of the bid's ID, which depends on the order requests
// arrived in), so the same run decides the same bids the same way.
func Decide(seed uint64, awardRate float64, postingID, account string) marketplace.Outcome {
	switch {
	case awardRate >= 1:
		return marketplace.OutcomeAwarded
	case !(awardRate > 0):
		return marketplace.OutcomeRejected
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(postingID))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(account))
	// A stream apart from posting content (seed, seq) and fault rolls.
	r := rand.New(rand.NewPCG(seed, h.Sum64()^0x0a7c_0e5e_0a7c_0e5e))
	if r.Float64() < awardRate {
		return marketplace.OutcomeAwarded
	}
	return marketplace.OutcomeRejected
}

// bidRecord is a created bid with what its outcome depends on.
type bidRecord struct {
	bid         *wireBid
	account     string
	retractedAt time.Time // zero unless retracted
}

// record is called by place, under bs.mu, for every bid it creates.
func (bs *bidStore) record(account string, b *wireBid) {
	if bs.byID == nil {
		bs.byID = map[string]*bidRecord{}
	}
	r := &bidRecord{bid: b, account: account}
	bs.byID[b.ID] = r
	bs.records = append(bs.records, r)
}

// outcomeAt is where r stands at now, and since when.
func (s *Server) outcomeAt(r *bidRecord, now time.Time) (marketplace.Outcome, time.Time) {
	if !r.retractedAt.IsZero() {
		return marketplace.OutcomeRetracted, r.retractedAt
	}
	if s.cfg.DecideAfter > 0 {
		if at := r.bid.CreatedAt.Add(s.cfg.DecideAfter); !now.Before(at) {
			return Decide(s.cfg.Seed, s.cfg.AwardRate, r.bid.PostingID, r.account), at
		}
	}
	return marketplace.OutcomePending, r.bid.CreatedAt
}

func wireOutcome(o marketplace.Outcome) string {
	switch o {
	case marketplace.OutcomeAwarded:
		return wireAwarded
	case marketplace.OutcomeRejected:
		return wireRejected
	case marketplace.OutcomeRetracted:
		return wireRetracted
	}
	return wirePending
}

// BidOutcomes returns every bid's outcome at the server's present time, in
// the order the bids were created.
func (s *Server) BidOutcomes() []BidOutcome {
	now := s.cfg.Now()
	bs := &s.bids
	bs.mu.Lock()
	defer bs.mu.Unlock()
	out := make([]BidOutcome, 0, len(bs.records))
	for _, r := range bs.records {
		o, at := s.outcomeAt(r, now)
		out = append(out, BidOutcome{BidID: r.bid.ID, PostingID: r.bid.PostingID, Account: r.account, Outcome: o, ChangedAt: at.UTC()})
	}
	return out
}

// countOutcomes fills the outcome counters of st at now.
func (s *Server) countOutcomes(st *Stats, now time.Time) {
	bs := &s.bids
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, r := range bs.records {
		switch o, _ := s.outcomeAt(r, now); o {
		case marketplace.OutcomeAwarded:
			st.AwardedBids++
		case marketplace.OutcomeRejected:
			st.RejectedBids++
		case marketplace.OutcomeRetracted:
			st.RetractedBids++
		}
	}
}

// bidStatuses serves GET /v1/bids/status?id=b-1&id=b-2: the status of each
// of this account's bids asked about; other IDs are left out.
func (s *Server) bidStatuses(w http.ResponseWriter, r *http.Request) {
	ids := r.URL.Query()["id"]
	if len(ids) == 0 || len(ids) > maxStatusIDs {
		badRequest(w, "give 1..100 id parameters")
		return
	}
	for _, id := range ids {
		if !validID(id) {
			badRequest(w, "each id must be 1..128 printable bytes")
			return
		}
	}
	account := accountOf(r.Context())
	now := s.cfg.Now()
	out := wireStatuses{Statuses: make([]wireBidStatus, 0, len(ids))}
	seen := make(map[string]bool, len(ids))
	bs := &s.bids
	bs.mu.Lock()
	for _, id := range ids {
		rec := bs.byID[id]
		if seen[id] || rec == nil || rec.account != account {
			continue
		}
		seen[id] = true
		o, at := s.outcomeAt(rec, now)
		out.Statuses = append(out.Statuses, wireBidStatus{ID: id, PostingID: rec.bid.PostingID, Status: wireOutcome(o), ChangedAt: at.UTC()})
	}
	bs.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// retractBid serves POST /v1/bids/{id}/retract. Retracting a retracted bid
// answers 200 again: a client that lost the first answer simply asks again.
func (s *Server) retractBid(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req wireRetractRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRetractBody))
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		badRequest(w, "body must be empty or a JSON object {posting_id}")
		return
	}
	account := accountOf(r.Context())
	now := s.cfg.Now()
	bs := &s.bids
	bs.mu.Lock()
	rec := bs.byID[id]
	if rec == nil || rec.account != account || (req.PostingID != "" && req.PostingID != rec.bid.PostingID) {
		bs.mu.Unlock()
		writeJSON(w, http.StatusNotFound, wireError{Error: codeNotFound})
		return
	}
	o, at := s.outcomeAt(rec, now)
	fresh := false
	switch o {
	case marketplace.OutcomeAwarded, marketplace.OutcomeRejected:
		bs.mu.Unlock()
		writeJSON(w, http.StatusConflict, wireRetractAnswer{Error: codeRetractTooLate, Status: wireOutcome(o), ChangedAt: at.UTC()})
		return
	case marketplace.OutcomePending:
		rec.retractedAt, at, fresh = now, now, true
	}
	bid := *rec.bid
	bs.mu.Unlock()
	if fresh && s.faults.roll(s.cfg.AmbiguousRate) {
		s.answerAmbiguously(w, "the bid may or may not have been retracted")
		return
	}
	writeJSON(w, http.StatusOK, wireRetractAnswer{Status: wireRetracted, ChangedAt: at.UTC(), Bid: &bid})
}
