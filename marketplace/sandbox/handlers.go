package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	defaultLimit = 100
	maxLimit     = 500
	maxBidBody   = 1 << 20
)

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /v1/postings", s.listPostings)
	m.HandleFunc("GET /v1/postings/{id}", s.getPosting)
	m.HandleFunc("POST /v1/postings/{id}/bids", s.placeBid)
	m.HandleFunc("GET /v1/bids", s.listBids)
	m.HandleFunc("GET /v1/bids/status", s.bidStatuses)
	m.HandleFunc("POST /v1/bids/{id}/retract", s.retractBid)
	m.HandleFunc("GET /v1/stats", s.stats)
	// Everything else gets a JSON 404 instead of the mux's plain text, so a
	// client always has a body it can decode.
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, wireError{Error: codeNotFound})
	})
	s.mux = m
}

func (s *Server) listPostings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultLimit
	if q.Has("limit") {
		v := q.Get("limit")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			badRequest(w, fmt.Sprintf("limit must be an integer in 1..%d, got %q", maxLimit, v))
			return
		}
		limit = n
	}
	var after *uint64
	if q.Has("cursor") {
		seq, err := decodeCursor(q.Get("cursor"))
		if err != nil {
			badRequest(w, err.Error())
			return
		}
		after = &seq
	}
	now := s.cfg.Now()
	page, next, err := s.postings.page(after, limit, now, s.cfg.CloseAfter)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	out := wirePage{Postings: make([]wirePosting, 0, len(page)), NextCursor: encodeCursor(next)}
	for _, sp := range page {
		out.Postings = append(out.Postings, s.render(sp, r, now))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getPosting(w http.ResponseWriter, r *http.Request) {
	sp, ok := s.postings.get(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, wireError{Error: codeNotFound})
		return
	}
	writeJSON(w, http.StatusOK, s.render(sp, r, s.cfg.Now()))
}

// render adds what depends on the request and the time: the URL (on whatever
// host the client reached us) and the status.
func (s *Server) render(sp *storedPosting, r *http.Request, now time.Time) wirePosting {
	p := sp.p
	p.URL = "http://" + r.Host + "/p/" + p.ID
	p.Status = "open"
	if s.isClosed(sp, now) {
		p.Status = "closed"
	}
	return p
}

func (s *Server) isClosed(sp *storedPosting, now time.Time) bool {
	return s.cfg.CloseAfter > 0 && !now.Before(sp.publishedAt.Add(s.cfg.CloseAfter))
}

func (s *Server) placeBid(w http.ResponseWriter, r *http.Request) {
	sp, ok := s.postings.get(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, wireError{Error: codeNotFound})
		return
	}
	key := r.Header.Get("Idempotency-Key")
	req, problem := decodeBidRequest(r.Body)
	switch {
	case key == "":
		problem = "missing Idempotency-Key header"
	case !validID(key):
		problem = "Idempotency-Key must be 1..128 printable bytes"
	case problem != "":
	case req.Amount <= 0 || math.IsInf(req.Amount, 0):
		problem = "amount must be a positive number"
	case strings.TrimSpace(req.Proposal) == "":
		problem = "proposal must not be empty"
	case req.Currency != sp.p.Budget.Currency:
		problem = fmt.Sprintf("currency must be the posting's (%s), got %q", sp.p.Budget.Currency, req.Currency)
	}
	if problem != "" {
		writeJSON(w, http.StatusUnprocessableEntity, wireError{Error: codeInvalidBid, Detail: problem})
		return
	}
	now := s.cfg.Now()
	outcome, bid := s.bids.place(bidAttempt{
		account:          accountOf(r.Context()),
		postingID:        sp.p.ID,
		key:              key,
		req:              req,
		closed:           s.isClosed(sp, now),
		honourKeys:       s.cfg.Idempotency == IdempotencyOn,
		rejectDuplicates: s.cfg.Duplicates == DuplicatesReject,
		now:              now,
	})
	switch outcome {
	case bidReplayed:
		writeJSON(w, http.StatusOK, wireBidAnswer{Bid: &bid})
	case bidClosed:
		writeJSON(w, http.StatusGone, wireError{Error: codeClosed})
	case bidDuplicate:
		writeJSON(w, http.StatusConflict, wireBidAnswer{Error: codeAlreadyBid, Bid: &bid})
	case bidCreated:
		if s.faults.roll(s.cfg.AmbiguousRate) {
			s.answerAmbiguously(w, "the bid may or may not have been stored")
			return
		}
		writeJSON(w, http.StatusCreated, wireBidAnswer{Bid: &bid})
	}
}

// answerAmbiguously is the ambiguous_rate fault: the change (a bid, a
// retract) is stored, and the client gets either a 504 saying detail or a
// connection closed without any answer.
func (s *Server) answerAmbiguously(w http.ResponseWriter, detail string) {
	if s.faults.roll(0.5) {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				s.faults.ambiguousDrops.Add(1)
				_ = conn.Close()
				return
			}
		}
		// HTTP/2 and wrapped writers cannot be hijacked; a 504 is just as
		// ambiguous to the client.
	}
	s.faults.ambiguous504.Add(1)
	writeJSON(w, http.StatusGatewayTimeout, wireError{Error: codeTimeout, Detail: detail})
}

// decodeBidRequest returns the body or a problem for the 422 detail.
func decodeBidRequest(body io.Reader) (wireBidRequest, string) {
	var req wireBidRequest
	dec := json.NewDecoder(io.LimitReader(body, maxBidBody))
	if err := dec.Decode(&req); err != nil {
		return req, "body must be a JSON object {amount, currency, proposal, fencing_token}: " + err.Error()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, "body must be a single JSON object"
	}
	return req, ""
}

func (s *Server) listBids(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("posting_id")
	if !validID(id) {
		badRequest(w, "posting_id must be 1..128 printable bytes")
		return
	}
	writeJSON(w, http.StatusOK, wireBids{Bids: s.bids.find(accountOf(r.Context()), id)})
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func badRequest(w http.ResponseWriter, detail string) {
	writeJSON(w, http.StatusBadRequest, wireError{Error: codeBadRequest, Detail: detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own types are encoded, so this is a bug; still answer.
		status, body = http.StatusInternalServerError, []byte(`{"error":"`+codeInternal+`"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
