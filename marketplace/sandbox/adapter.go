package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// AdapterName is the "adapter:" value in config that selects this adapter.
const AdapterName = "sandbox"

const (
	// DefaultRequestTimeout applies when Config.RequestTimeout is 0.
	DefaultRequestTimeout = 10 * time.Second
	// MaxAnswerBytes caps how much of an answer is read.
	MaxAnswerBytes = 8 << 20
	// idleConnsPerHost covers ~64 concurrent workers plus the scanner with
	// room to spare, so steady load never has to redial.
	idleConnsPerHost = 128
)

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("sandbox adapter: invalid config")

// Adapter is the marketplace.Adapter for a sandbox API server. It is safe for
// concurrent use.
type Adapter struct {
	id      string
	account string
	token   string // secret: only ever written into the Authorization header
	base    *url.URL
	client  *http.Client
	timeout time.Duration
}

var _ marketplace.Adapter = (*Adapter)(nil)

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
		client = newHTTPClient(timeout)
	}
	return &Adapter{id: cfg.ID, account: account, token: cfg.Token, base: base, client: client, timeout: timeout}, nil
}

func newHTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2 * idleConnsPerHost,
		MaxIdleConnsPerHost:   idleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(timeout, 5*time.Second),
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport: tr,
		// A redirect is an answer to classify, not something to follow: a
		// followed POST could be sent twice.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
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
	ans, err := a.get(ctx, "scan", a.endpoint(q, "v1", "postings"))
	if err != nil {
		return marketplace.Page{}, err
	}
	return decodePage(a.id, cursor, limit, ans.status, ans.header, ans.body)
}

// Posting fetches one posting, e.g. to check it is still open.
func (a *Adapter) Posting(ctx context.Context, id string) (marketplace.Posting, error) {
	const op = "get_posting"
	if err := checkPathID(op, id); err != nil {
		return marketplace.Posting{}, err
	}
	ans, err := a.get(ctx, op, a.endpoint(nil, "v1", "postings", id))
	if err != nil {
		return marketplace.Posting{}, err
	}
	return decodePosting(a.id, id, ans.status, ans.header, ans.body)
}

// FindBid returns this account's oldest bid on the posting.
func (a *Adapter) FindBid(ctx context.Context, postingID string) (marketplace.PlacedBid, bool, error) {
	const op = "find_bid"
	if err := checkPathID(op, postingID); err != nil {
		return marketplace.PlacedBid{}, false, err
	}
	ans, err := a.get(ctx, op, a.endpoint(url.Values{"posting_id": {postingID}}, "v1", "bids"))
	if err != nil {
		return marketplace.PlacedBid{}, false, err
	}
	return decodeFindBid(postingID, ans.status, ans.header, ans.body)
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

	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint(nil, "v1", "postings", postingID, "bids"), bytes.NewReader(body))
	if err != nil {
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, err)
	}
	// net/http resends a request on a dead keep-alive connection when it can
	// rewind the body, and treats any request with an Idempotency-Key header
	// as safe to resend; against a marketplace that ignores keys that is a
	// duplicate bid. Without GetBody it cannot rewind, so it never resends.
	req.GetBody = nil
	a.setHeaders(req)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)

	resp, err := a.client.Do(req)
	if err != nil {
		if !wrote.Load() {
			return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrTransient, op, ReasonNotSent, err)
		}
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrAmbiguous, op, ReasonNoAnswer, err)
	}
	defer resp.Body.Close()
	raw, err := readCapped(resp.Body, MaxAnswerBytes)
	if err != nil {
		if resp.StatusCode >= 400 && resp.StatusCode <= 499 {
			// The status line already said the bid was refused.
			return decodeBidAnswer(postingID, resp.StatusCode, resp.Header, nil)
		}
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrAmbiguous, op, readReason(err), fmt.Errorf("HTTP %d: reading answer: %w", resp.StatusCode, err))
	}
	return decodeBidAnswer(postingID, resp.StatusCode, resp.Header, raw)
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// get performs a read. Reads change nothing, so every failure to get a
// complete answer is transient.
func (a *Adapter) get(ctx context.Context, op, target string) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return answer{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, err)
	}
	a.setHeaders(req)
	resp, err := a.client.Do(req)
	if err != nil {
		return answer{}, marketplace.NewError(marketplace.ErrTransient, op, ReasonNoAnswer, err)
	}
	defer resp.Body.Close()
	raw, err := readCapped(resp.Body, MaxAnswerBytes)
	if err != nil {
		return answer{}, marketplace.NewError(marketplace.ErrTransient, op, readReason(err), fmt.Errorf("HTTP %d: reading answer: %w", resp.StatusCode, err))
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}, nil
}

func readReason(err error) string {
	if errors.Is(err, errTooLarge) {
		return ReasonTooLarge
	}
	return ReasonNoAnswer
}

func (a *Adapter) setHeaders(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "bidder-sandbox-adapter")
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
