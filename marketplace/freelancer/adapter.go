package freelancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/httpx"
)

const (
	pathSelf     = "/api/users/0.1/self/"
	pathActive   = "/api/projects/0.1/projects/active/"
	pathBids     = "/api/projects/0.1/bids/"
	pathProjects = "/api/projects/0.1/projects/" // + <id>/: one project
	headerToken  = "freelancer-oauth-v1"
	userAgent    = "bidder-freelancer-adapter"
	defaultLimit = 50
	// maxDroppedLogged is how many dropped projects' problems the one
	// warning per scan answer quotes.
	maxDroppedLogged = 3
	// maxLimit is the largest page asked for. The docs give no maximum for
	// /projects/active/; 100 is what public clients use without complaint.
	maxLimit = 100
)

// Adapter is the marketplace.Adapter for Freelancer.com. It is safe for
// concurrent use.
type Adapter struct {
	s    settings
	site string // base URL without a trailing slash, for project links
	api  httpx.Client
	log  *zap.Logger
	now  func() time.Time

	// The account's user ID, resolved once by GET /self. A failed
	// resolution is not cached, so the next call tries again.
	selfMu  sync.Mutex
	selfID  int64
	selfReq *selfCall
}

// selfCall is one in-flight GET /self that concurrent first users share.
type selfCall struct {
	done chan struct{}
	id   int64
	err  error
}

var (
	_ marketplace.Adapter       = (*Adapter)(nil)
	_ marketplace.PostingReader = (*Adapter)(nil)
)

// New is the marketplace.Factory of the Freelancer adapter.
func New(cfg marketplace.Config) (marketplace.Adapter, error) {
	a, err := NewAdapter(cfg)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Register adds the Freelancer adapter to r under AdapterName.
func Register(r *marketplace.Registry) error { return r.Register(AdapterName, New) }

// NewAdapter is New returning the concrete type.
func NewAdapter(cfg marketplace.Config) (*Adapter, error) {
	s, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = httpx.NewHTTPClient(s.timeout)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Adapter{
		s:    s,
		site: strings.TrimSuffix(s.base.String(), "/"),
		api: httpx.Client{
			HTTP:       client,
			Timeout:    s.timeout,
			MaxBytes:   MaxAnswerBytes,
			AuthHeader: headerToken,
			AuthValue:  s.token,
			UserAgent:  userAgent,
		},
		log: log,
		now: time.Now,
	}, nil
}

func (a *Adapter) ID() string { return a.s.id }

// Account is Config.Account, or AccountFromToken: stable, non-secret, and
// known without a network call.
func (a *Adapter) Account() string { return a.s.account }

// Scan returns up to limit active projects after cursor; see cursor.go for
// why a page may repeat projects but never skips one. A limit outside 1..100
// is brought into it.
func (a *Adapter) Scan(ctx context.Context, cursor string, limit int) (marketplace.Page, error) {
	const op = "scan"
	cur, err := decodeCursor(cursor)
	if err != nil {
		return marketplace.Page{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonBadCursor, err)
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	overlap := min(len(cur.Seen), maxOverlap)
	ask := min(limit+overlap, maxLimit)
	start := cur.Offset - overlap
	from := cur.From
	if cur.Probe {
		from = cur.High
	}

	q := url.Values{}
	q.Set("limit", strconv.Itoa(ask))
	q.Set("offset", strconv.Itoa(start))
	if from > 0 {
		q.Set("from_time", strconv.FormatInt(from, 10))
	}
	if a.s.query != "" {
		q.Set("query", a.s.query)
	}
	for _, j := range a.s.jobs {
		q.Add("jobs[]", strconv.FormatInt(j, 10))
	}
	for _, t := range a.s.projectTypes {
		q.Add("project_types[]", t)
	}
	q.Set("job_details", "true")
	if a.s.fullDescription {
		q.Set("full_description", "true")
	}
	if a.s.ownerDetails {
		q.Set("user_details", "true")
		q.Set("user_employer_reputation", "true")
		q.Set("user_country_details", "true")
	}
	ans, err := a.api.Get(ctx, op, a.endpoint(pathActive, q))
	if err != nil {
		return marketplace.Page{}, err
	}
	now := a.now()
	page, err := decodeProjects(a.s.id, a.site, ask, ans.Status, ans.Header, ans.Body, now)
	if err != nil {
		return marketplace.Page{}, err
	}
	if page.dropped > 0 {
		// One line per answer, not per project: a hostile answer could
		// hold a page of unusable projects on every scan.
		first := make([]string, 0, len(page.problems))
		for _, p := range page.problems {
			first = append(first, p.Error())
		}
		a.log.Warn("freelancer: projects left out of the scan page", zap.Int("dropped", page.dropped), zap.Strings("first", first))
	}
	next := nextCursor(cur, start, ask, page, now, a.s.lookback)
	if next.discontinuous {
		a.log.Info("freelancer: scan window shifted past the page overlap; restarting the sweep", zap.Int("offset", cur.Offset))
	}
	postings := page.postings
	slices.SortStableFunc(postings, func(x, y marketplace.Posting) int {
		if c := x.PostedAt.Compare(y.PostedAt); c != 0 {
			return c
		}
		xi, _ := strconv.ParseInt(x.ID, 10, 64)
		yi, _ := strconv.ParseInt(y.ID, 10, 64)
		return cmpInt(xi, yi)
	})
	nc := next.state.encode()
	if next.state.equal(cur) {
		nc = cursor // byte-identical: the scanner's "caught up"
	}
	return marketplace.Page{Postings: postings, NextCursor: nc}, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type cursorStep struct {
	state         cursorState
	discontinuous bool
}

// nextCursor computes the cursor after a page fetched at offset start with
// limit ask. It is pure so the paging rules can be tested on their own.
func nextCursor(cur cursorState, start, ask int, page projectsPage, now time.Time, lookback time.Duration) cursorStep {
	high := cur.High
	// A timestamp from the future would push the window past projects not
	// yet seen; an hour of clock skew is tolerated, more is ignored.
	horizon := now.Add(time.Hour).Unix()
	for _, t := range page.times {
		if !t.IsZero() && t.Unix() <= horizon {
			high = max(high, t.Unix())
		}
	}
	full := len(page.ids) >= ask
	if cur.Probe {
		if !full && high == cur.High {
			return cursorStep{state: cur} // caught up
		}
		// News: sweep the window that reaches back from the old High.
		return cursorStep{state: cursorState{From: cur.From, High: high}}
	}
	if len(cur.Seen) > 0 && !slices.ContainsFunc(cur.Seen, func(id int64) bool { return slices.Contains(page.ids, id) }) {
		// Unseen projects may have slid below start: sweep the window again.
		return cursorStep{state: cursorState{From: cur.From, High: high}, discontinuous: true}
	}
	if full {
		// More may follow. The next request starts at the last IDs of this
		// answer, at their current offsets.
		tail := page.ids[max(0, len(page.ids)-maxOverlap):]
		return cursorStep{state: cursorState{
			From:   cur.From,
			Offset: start + len(page.ids),
			Seen:   slices.Clone(tail),
			High:   high,
		}}
	}
	// End of the window: the next one reaches lookback behind the newest
	// project seen and never moves back; first, probe for news.
	if high == 0 {
		// Nothing with a usable time_submitted (an empty marketplace, say):
		// there is no High to probe from, so the next scan sweeps again.
		return cursorStep{state: cursorState{From: cur.From}}
	}
	from := max(cur.From, high-int64(lookback/time.Second))
	return cursorStep{state: cursorState{From: from, High: high, Probe: true}}
}

// FindBid returns this account's bid on the project, found=false when there
// is none. It is how an ambiguous PlaceBid gets resolved.
func (a *Adapter) FindBid(ctx context.Context, postingID string) (marketplace.PlacedBid, bool, error) {
	const op = "find_bid"
	projectID, err := parseProjectID(op, postingID)
	if err != nil {
		return marketplace.PlacedBid{}, false, err
	}
	self, err := a.self(ctx)
	if err != nil {
		return marketplace.PlacedBid{}, false, err
	}
	return a.findBid(ctx, projectID, self)
}

func (a *Adapter) findBid(ctx context.Context, projectID, self int64) (marketplace.PlacedBid, bool, error) {
	q := url.Values{}
	q.Set("projects[]", strconv.FormatInt(projectID, 10))
	q.Set("bidders[]", strconv.FormatInt(self, 10))
	q.Set("limit", strconv.Itoa(maxFindBids))
	ans, err := a.api.Get(ctx, "find_bid", a.endpoint(pathBids, q))
	if err != nil {
		return marketplace.PlacedBid{}, false, err
	}
	return decodeFindBid(projectID, self, ans.Status, ans.Header, ans.Body, a.now())
}

// wireBidRequest is the documented body of POST /bids/.
type wireBidRequest struct {
	ProjectID           int64   `json:"project_id"`
	BidderID            int64   `json:"bidder_id"`
	Amount              float64 `json:"amount"`
	Period              int     `json:"period"`
	MilestonePercentage float64 `json:"milestone_percentage"`
	Description         string  `json:"description"`
}

// PlaceBid sends the bid once. It never retries: Freelancer takes no
// idempotency key, so after a lost answer only FindBid can tell whether the
// bid exists. The amount is in the project's currency (bids carry none);
// bid.IdempotencyKey and bid.FencingToken are not sent because the API has
// no field for them.
func (a *Adapter) PlaceBid(ctx context.Context, postingID string, bid marketplace.Bid) (marketplace.PlacedBid, error) {
	const op = "place_bid"
	projectID, err := parseProjectID(op, postingID)
	if err != nil {
		return marketplace.PlacedBid{}, err
	}
	if math.IsNaN(bid.Amount) || math.IsInf(bid.Amount, 0) || bid.Amount <= 0 {
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidBid, fmt.Errorf("amount %v is not a positive number", bid.Amount))
	}
	self := a.selfCached()
	if self == 0 {
		// PlaceBid sends the bid and nothing before it (see
		// marketplace.Preparer): the account must be resolved already.
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrTransient, op, ReasonNotSent,
			errors.New("the bidder's user ID is not resolved yet: PrepareBid first"))
	}
	body, err := json.Marshal(wireBidRequest{
		ProjectID:           projectID,
		BidderID:            self,
		Amount:              bid.Amount,
		Period:              a.s.periodDays,
		MilestonePercentage: a.s.milestonePct,
		Description:         bid.Proposal,
	})
	if err != nil {
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, err)
	}

	// Freelancer has no idempotency key, so a POST that net/http resent
	// would be a second bid; httpx.PostBid makes sure it never is.
	ans, err := a.api.PostBid(ctx, op, a.endpoint(pathBids, nil), body, nil)
	if err != nil {
		return marketplace.PlacedBid{}, err
	}
	placed, err := decodeBidAnswer(projectID, self, bid.Currency, ans.Status, ans.Header, ans.Body, a.now())
	if errors.Is(err, marketplace.ErrAlreadyBid) {
		// The refusal does not say which bid; a best-effort look-up lets the
		// worker record it. Failing that, Existing stays nil.
		if found, ok, ferr := a.findBid(ctx, projectID, self); ferr == nil && ok {
			var me *marketplace.Error
			if errors.As(err, &me) {
				me.Existing = &found
			}
		}
	}
	return placed, err
}

// PrepareBid resolves the account's user ID (GET /self, once), which every
// bid carries, so that PlaceBid makes one request: the bid.
func (a *Adapter) PrepareBid(ctx context.Context) error {
	_, err := a.self(ctx)
	return err
}

// selfCached is the account's user ID if it is resolved, else 0.
func (a *Adapter) selfCached() int64 {
	a.selfMu.Lock()
	defer a.selfMu.Unlock()
	return a.selfID
}

// self returns the account's user ID, resolving it on first use. Concurrent
// first users share one request; a failure is returned to all of them and
// not cached.
func (a *Adapter) self(ctx context.Context) (int64, error) {
	a.selfMu.Lock()
	if a.selfID != 0 {
		id := a.selfID
		a.selfMu.Unlock()
		return id, nil
	}
	call := a.selfReq
	leader := call == nil
	if leader {
		call = &selfCall{done: make(chan struct{})}
		a.selfReq = call
	}
	a.selfMu.Unlock()

	if leader {
		// Detached from the first caller's cancellation: the answer is
		// shared, and one caller giving up must not fail the others.
		id, err := a.fetchSelf(context.WithoutCancel(ctx))
		a.selfMu.Lock()
		call.id, call.err = id, err
		if err == nil {
			a.selfID = id
		}
		a.selfReq = nil
		a.selfMu.Unlock()
		close(call.done)
		return id, err
	}
	select {
	case <-call.done:
		return call.id, call.err
	case <-ctx.Done():
		return 0, marketplace.NewError(marketplace.ErrTransient, "get_self", ReasonNotSent, context.Cause(ctx))
	}
}

// Posting reads one project as it is now (GET
// /api/projects/0.1/projects/<id>/): open while its status is "active",
// closed otherwise. The recovery pass asks it about postings in review.
func (a *Adapter) Posting(ctx context.Context, postingID string) (marketplace.Posting, error) {
	const op = "get_project"
	id, err := parseProjectID(op, postingID)
	if err != nil {
		return marketplace.Posting{}, err
	}
	ans, err := a.api.Get(ctx, op, a.endpoint(pathProjects+strconv.FormatInt(id, 10)+"/", nil))
	if err != nil {
		return marketplace.Posting{}, err
	}
	return decodeProject(a.s.id, a.site, id, ans.Status, ans.Header, ans.Body, a.now())
}

func (a *Adapter) fetchSelf(ctx context.Context) (int64, error) {
	ans, err := a.api.Get(ctx, "get_self", a.endpoint(pathSelf, nil))
	if err != nil {
		return 0, err
	}
	return decodeSelf(ans.Status, ans.Header, ans.Body, a.now())
}

// endpoint joins an API path onto the base URL (which may have a path of
// its own, e.g. behind a proxy).
func (a *Adapter) endpoint(path string, q url.Values) string {
	u := *a.s.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return u.String()
}

// parseProjectID accepts the decimal project IDs Scan produces.
func parseProjectID(op, postingID string) (int64, error) {
	id, err := strconv.ParseInt(postingID, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != postingID {
		return 0, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, fmt.Errorf("posting id %q is not a Freelancer project ID", textsafe.Line(postingID, 64)))
	}
	return id, nil
}
