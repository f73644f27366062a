package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/httpx"
)

// AdapterName is the "adapter:" value in config that selects this adapter.
const AdapterName = "sandbox"

const (
	// DefaultRequestTimeout applies when Config.RequestTimeout is 0.
	DefaultRequestTimeout = 10 * time.Second
	// MaxAnswerBytes caps how much of an answer is read.
	MaxAnswerBytes = 8 << 20
)

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("sandbox adapter: invalid config")

// Adapter is the marketplace.Adapter for a sandbox API server. It is safe for
// concurrent use.
type Adapter struct {
	id      string
	account string
	base    *url.URL
	api     httpx.Client // the token is only ever written into its Authorization header
}

var (
	_ marketplace.Adapter       = (*Adapter)(nil)
	_ marketplace.PostingReader = (*Adapter)(nil)
)

// New is the marketplace.Factory of the sandbox adapter.
func New(cfg marketplace.Config) (marketplace.Adapter, error) {
	a, err := NewAdapter(cfg)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Register adds the sandbox adapter to r under AdapterName.
func Register(r *marketplace.Registry) error { return r.Register(AdapterName, New) }

// NewAdapter is New returning the concrete type, for callers that want
// Posting as well.
func NewAdapter(cfg marketplace.Config) (*Adapter, error) {
	if cfg.ID == "" {
		return nil, fmt.Errorf("%w: empty marketplace ID", ErrConfig)
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		// The URL could carry credentials, so it is not echoed back.
		return nil, fmt.Errorf("%w: marketplace %q: base URL must be http(s)://host[:port][/path]", ErrConfig, cfg.ID)
	}
	if base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("%w: marketplace %q: base URL must not carry user info, query or fragment", ErrConfig, cfg.ID)
	}
	if cfg.Token == "" {
		return nil, fmt.Errorf("%w: marketplace %q: empty token", ErrConfig, cfg.ID)
	}
	if strings.ContainsAny(cfg.Token, " \t\r\n") {
		return nil, fmt.Errorf("%w: marketplace %q: token contains whitespace", ErrConfig, cfg.ID)
	}
	if cfg.RequestTimeout < 0 {
		return nil, fmt.Errorf("%w: marketplace %q: negative request timeout", ErrConfig, cfg.ID)
	}
	account := cfg.Account
	if account == "" {
		account = AccountFromToken(cfg.Token)
	}
	timeout := cfg.RequestTimeout
	if timeout == 0 {
		timeout = DefaultRequestTimeout
	}
	client := cfg.HTTPClient
	if client == nil {
		client = httpx.NewHTTPClient(timeout)
	}
	return &Adapter{id: cfg.ID, account: account, base: base, api: httpx.Client{
		HTTP:       client,
		Timeout:    timeout,
		MaxBytes:   MaxAnswerBytes,
		AuthHeader: "Authorization",
		AuthValue:  "Bearer " + cfg.Token,
		UserAgent:  "bidder-sandbox-adapter",
	}}, nil
}

func (a *Adapter) ID() string      { return a.id }
func (a *Adapter) Account() string { return a.account }

// Scan returns up to limit postings after cursor. A limit outside 1..500 is
// brought into it (the API's bounds), so callers need not know them.
func (a *Adapter) Scan(ctx context.Context, cursor string, limit int) (marketplace.Page, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	ans, err := a.api.Get(ctx, "scan", a.endpoint(q, "v1", "postings"))
	if err != nil {
		return marketplace.Page{}, err
	}
	return decodePage(a.id, cursor, limit, ans.Status, ans.Header, ans.Body)
}

// Posting fetches one posting, e.g. to check it is still open.
func (a *Adapter) Posting(ctx context.Context, id string) (marketplace.Posting, error) {
	const op = "get_posting"
	if err := checkPathID(op, id); err != nil {
		return marketplace.Posting{}, err
	}
	ans, err := a.api.Get(ctx, op, a.endpoint(nil, "v1", "postings", id))
	if err != nil {
		return marketplace.Posting{}, err
	}
	return decodePosting(a.id, id, ans.Status, ans.Header, ans.Body)
}

// FindBid returns this account's oldest bid on the posting.
func (a *Adapter) FindBid(ctx context.Context, postingID string) (marketplace.PlacedBid, bool, error) {
	const op = "find_bid"
	if err := checkPathID(op, postingID); err != nil {
		return marketplace.PlacedBid{}, false, err
	}
	ans, err := a.api.Get(ctx, op, a.endpoint(url.Values{"posting_id": {postingID}}, "v1", "bids"))
	if err != nil {
		return marketplace.PlacedBid{}, false, err
	}
	return decodeFindBid(postingID, ans.Status, ans.Header, ans.Body)
}

// PlaceBid sends the bid once. It never retries: after a lost answer only the
// caller, via FindBid, can learn whether the bid exists.
func (a *Adapter) PlaceBid(ctx context.Context, postingID string, bid marketplace.Bid) (marketplace.PlacedBid, error) {
	const op = "place_bid"
	if err := checkPathID(op, postingID); err != nil {
		return marketplace.PlacedBid{}, err
	}
	key := bid.IdempotencyKey
	if key == "" {
		key = marketplace.IdempotencyKey(a.id, postingID, a.account)
	}
	if !validID(key) {
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, errors.New("idempotency key must be 1..128 printable bytes"))
	}
	body, err := json.Marshal(wireBidRequest{Amount: bid.Amount, Currency: bid.Currency, Proposal: bid.Proposal, FencingToken: bid.FencingToken})
	if err != nil { // NaN or ±Inf amount
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, err)
	}

	// The Idempotency-Key header makes net/http treat the POST as safe to
	// resend; httpx.PostBid makes sure it never is (against a marketplace
	// that ignores keys that would be a duplicate bid).
	ans, err := a.api.PostBid(ctx, op, a.endpoint(nil, "v1", "postings", postingID, "bids"), body, http.Header{"Idempotency-Key": {key}})
	if err != nil {
		return marketplace.PlacedBid{}, err
	}
	return decodeBidAnswer(postingID, ans.Status, ans.Header, ans.Body)
}

// endpoint joins escaped path segments onto the base URL. url.JoinPath would
// treat a "/" or ".." inside a posting ID as path structure.
func (a *Adapter) endpoint(q url.Values, segments ...string) string {
	u := *a.base
	raw := strings.TrimSuffix(a.base.EscapedPath(), "/")
	plain := strings.TrimSuffix(a.base.Path, "/")
	for _, s := range segments {
		raw += "/" + url.PathEscape(s)
		plain += "/" + s
	}
	u.Path, u.RawPath = plain, raw
	u.RawQuery = q.Encode()
	return u.String()
}

// checkPathID refuses IDs that cannot be sent as one path segment.
func checkPathID(op, id string) error {
	if !validID(id) || id == "." || id == ".." {
		return marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, fmt.Errorf("posting id %q is not 1..128 printable bytes naming one path segment", id))
	}
	return nil
}
