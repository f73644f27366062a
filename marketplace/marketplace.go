// Package marketplace defines what a freelance marketplace is to bidder: the
// domain types, the Adapter interface every marketplace implements, the error
// classes adapters map their failures onto, and a registry that config uses to
// pick adapters by name.
//
// It imports nothing from the rest of bidder; adapters live in sub-packages
// (marketplace/sandbox, ...) and import this one.
package marketplace

import (
	"context"
	"time"
)

// BudgetType says how a posting pays.
type BudgetType string

const (
	BudgetFixed  BudgetType = "fixed"
	BudgetHourly BudgetType = "hourly"
)

// Status is a posting's state on its marketplace.
type Status string

const (
	StatusOpen   Status = "open"
	StatusClosed Status = "closed"
)

// Budget is money as numbers in the posting's currency (the original service
// kept budgets as strings and lost a factor of 100 in a unit bug).
type Budget struct {
	Type     BudgetType `json:"type"`
	Min      float64    `json:"min"`
	Max      float64    `json:"max"`
	Currency string     `json:"currency"`
}

// Client is what the marketplace tells about the person who posted the job.
type Client struct {
	Rating     float64 `json:"rating"`
	TotalSpend float64 `json:"total_spend"`
	Country    string  `json:"country"`
}

// Posting is one job posting. Its identity is (MarketplaceID, ID): the
// marketplace's own ID, never something derived from the title.
type Posting struct {
	MarketplaceID string    `json:"marketplace_id"`
	ID            string    `json:"id"`
	Title         string    `json:"title"`
	Description   string    `json:"description"`
	Budget        Budget    `json:"budget"`
	Skills        []string  `json:"skills,omitempty"`
	URL           string    `json:"url,omitempty"`
	PostedAt      time.Time `json:"posted_at"`
	Client        Client    `json:"client"`
	Status        Status    `json:"status"`
}

// Bid is what bidder sends. IdempotencyKey comes from IdempotencyKey() so that
// every retry by any worker sends the same one; FencingToken is the lock's
// token, passed on for marketplaces that can reject stale writers.
type Bid struct {
	Amount         float64 `json:"amount"`
	Currency       string  `json:"currency"`
	Proposal       string  `json:"proposal"`
	IdempotencyKey string  `json:"idempotency_key"`
	FencingToken   int64   `json:"fencing_token"`
}

// PlacedBid is a bid as the marketplace stored it.
type PlacedBid struct {
	ID             string    `json:"id"`
	PostingID      string    `json:"posting_id"`
	Amount         float64   `json:"amount"`
	Currency       string    `json:"currency"`
	FencingToken   int64     `json:"fencing_token,omitempty"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// Page is one step of a scan: postings published after the cursor that was
// asked for, in publication order, and the cursor to continue from. An empty
// page with NextCursor equal to the old cursor means "caught up".
type Page struct {
	Postings   []Posting
	NextCursor string
}

// Adapter is one marketplace account. Implementations must be safe for
// concurrent use, map every failure onto the error classes in errors.go, and
// never retry a bid on their own: the worker owns retry policy, because only
// it knows whether an earlier attempt may have gone through.
type Adapter interface {
	// ID is the marketplace ID from config (the "upwork" of
	// bid_lock:upwork:job_123).
	ID() string
	// Account is a stable, non-secret name of the account the adapter bids
	// as. It feeds IdempotencyKey, so it must not change between restarts.
	Account() string
	// Scan returns up to limit postings published after cursor ("" = from the
	// oldest open posting).
	Scan(ctx context.Context, cursor string, limit int) (Page, error)
	// PlaceBid places bid on the posting.
	PlaceBid(ctx context.Context, postingID string, bid Bid) (PlacedBid, error)
	// FindBid returns this account's bid on the posting, found=false when
	// there is none. It is how an ambiguous PlaceBid gets resolved.
	FindBid(ctx context.Context, postingID string) (bid PlacedBid, found bool, err error)
}

// Preparer is an optional Adapter capability: what a bid needs besides the
// bid itself (an account lookup, say), done before the worker claims the
// posting. The worker bounds the time from its claim to the bid's first
// byte, and the settle window other workers wait after an intent counts
// from the claim; a request made inside PlaceBid before the bid would spend
// that time unseen. So an adapter that needs such a request implements
// PrepareBid, and its PlaceBid sends the bid and nothing before it.
type Preparer interface {
	// PrepareBid makes PlaceBid ready to send at once; it may be called
	// before every bid, so it should cache what it learns.
	PrepareBid(ctx context.Context) error
}

// PostingReader is an optional Adapter capability: one posting as it is
// now. The recovery pass asks it whether a posting waiting for a reviewer
// has closed, so that its review ends rather than an approval sending a
// bid the marketplace can only refuse. It only reads.
type PostingReader interface {
	Posting(ctx context.Context, postingID string) (Posting, error)
}
