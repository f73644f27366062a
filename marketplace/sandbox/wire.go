package sandbox

import (
	"time"
)

// The JSON bodies of sandbox-api.md. They are separate from the marketplace
// domain types on purpose: the wire format is a contract with other
// implementations and must not move when the domain types do.

type wireBudget struct {
	Type     string  `json:"type"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	Currency string  `json:"currency"`
}

type wireClient struct {
	Rating     float64 `json:"rating"`
	TotalSpend float64 `json:"total_spend"`
	Country    string  `json:"country"`
}

type wirePosting struct {
	ID          string     `json:"id"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Budget      wireBudget `json:"budget"`
	Skills      []string   `json:"skills"`
	URL         string     `json:"url"`
	PostedAt    time.Time  `json:"posted_at"`
	Client      wireClient `json:"client"`
	Status      string     `json:"status"`
}

type wirePage struct {
	Postings   []wirePosting `json:"postings"`
	NextCursor string        `json:"next_cursor"`
}

type wireBidRequest struct {
	Amount       float64 `json:"amount"`
	Currency     string  `json:"currency"`
	Proposal     string  `json:"proposal"`
	FencingToken int64   `json:"fencing_token"`
}

type wireBid struct {
	ID             string    `json:"id"`
	PostingID      string    `json:"posting_id"`
	Amount         float64   `json:"amount"`
	Currency       string    `json:"currency"`
	Proposal       string    `json:"proposal"`
	FencingToken   int64     `json:"fencing_token"`
	IdempotencyKey string    `json:"idempotency_key"`
	CreatedAt      time.Time `json:"created_at"`
}

// wireBidAnswer covers 200, 201 and 409 answers to a bid.
type wireBidAnswer struct {
	Error string   `json:"error,omitempty"`
	Bid   *wireBid `json:"bid,omitempty"`
}

type wireBids struct {
	Bids []wireBid `json:"bids"`
}

type wireError struct {
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
}

// Stats is the body of GET /v1/stats: what a run did to the marketplace.
type Stats struct {
	Postings     int64 `json:"postings"`
	OpenPostings int64 `json:"open_postings"`
	Bids         int64 `json:"bids"`
	// PostingsWithMultipleBids counts postings holding two or more bids (of
	// any accounts; with one account, the postings that got duplicates).
	PostingsWithMultipleBids int64 `json:"postings_with_multiple_bids"`
	// DuplicateBids counts bids created on a posting that already had a bid
	// from the same account.
	DuplicateBids int64 `json:"duplicate_bids"`
	// RejectedDuplicates counts 409 answers.
	RejectedDuplicates int64 `json:"rejected_duplicates"`
	// IdempotentReplays counts 200 answers to a repeated Idempotency-Key.
	IdempotentReplays int64 `json:"idempotent_replays"`
	// StaleFenceBids counts bids created with a fencing_token lower than that
	// of a bid already created on the posting.
	StaleFenceBids int64 `json:"stale_fence_bids"`
	// Outcomes so far (an additive extension): bids awarded, rejected and
	// retracted at the time of the answer.
	AwardedBids   int64 `json:"awarded_bids"`
	RejectedBids  int64 `json:"rejected_bids"`
	RetractedBids int64 `json:"retracted_bids"`
}

// Error codes of the contract.
const (
	codeUnauthorized = "unauthorized"
	codeBadRequest   = "bad_request"
	codeNotFound     = "not_found"
	codeClosed       = "posting_closed"
	codeInvalidBid   = "invalid_bid"
	codeAlreadyBid   = "already_bid"
	codeRateLimited  = "rate_limited"
	codeUnavailable  = "unavailable"     // 503 from error_rate: nothing was done
	codeTimeout      = "gateway_timeout" // 504 from ambiguous_rate: the bid was stored
	codeInternal     = "internal"
)

// validID reports whether s is 1..128 printable ASCII bytes, the contract's
// rule for posting IDs and idempotency keys.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
