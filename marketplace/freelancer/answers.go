package freelancer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/httpx"
	"github.com/bidder/bidder/marketplace/internal/jsonstream"
)

// Decoding of Freelancer's answers into domain values or classified errors.
// These functions see only (status, header, body), so the fuzz tests can
// drive them with anything a broken or hostile server might send.

// Reasons the adapter sets.
const (
	ReasonUnauthorized = "unauthorized" // the worker treats this as an account problem
	ReasonNotFound     = "not_found"
	ReasonClosed       = "project_closed"
	ReasonAlreadyBid   = "already_bid"
	ReasonInvalidBid   = "invalid_bid"
	ReasonBadRequest   = "bad_request"
	ReasonRateLimited  = "rate_limited"
	ReasonBadCursor    = "bad_cursor"
	ReasonMalformed    = "malformed_response" // not JSON, truncated, empty
	ReasonInvalid      = "invalid_response"   // JSON that breaks the documented shape
	ReasonTooLarge     = httpx.ReasonTooLarge // "response_too_large"
	ReasonUnexpected   = "unexpected_status"
	ReasonNotSent      = httpx.ReasonNotSent      // "not_sent": failed before the request was written
	ReasonNoAnswer     = httpx.ReasonNoAnswer     // "no_answer": sent, then no (complete) answer
	ReasonInvalidInput = httpx.ReasonInvalidInput // "invalid_request"
	ReasonNotEligible  = "not_eligible"           // the account may not bid on this project
	ReasonBidLimit     = "bid_limit_exceeded"
)

// Limits of a decoded answer, sized to the largest the API sends, so that
// what an answer costs is bounded by them and not by how many elements fit
// under the byte cap (see jsonstream).
const (
	// maxMembers bounds the members of an envelope's result object.
	maxMembers = 64
	// maxUsers bounds the users map of a projects answer: one per owner of
	// at most maxLimit projects.
	maxUsers = 10 * maxLimit
	// maxFindBids is the limit FindBid asks for: one account's bids on one
	// project.
	maxFindBids = 10
	// maxValues bounds the JSON values in one answer. A page of 100
	// projects with job details and owner details has some 50,000.
	maxValues = 1 << 18
)

const (
	// MaxAnswerBytes caps how much of an answer is read. A page of 100
	// projects with full descriptions and owner details is well under 2 MiB.
	MaxAnswerBytes  = 8 << 20
	maxRetryAfter   = httpx.MaxRetryAfter
	maxMessageBytes = 200
	maxCodeBytes    = 100
)

// codeRule is what an error_code means.
type codeRule struct {
	class  error
	reason string
	// seen says where the code comes from. The public docs list no error
	// codes, so none is "documented"; "observed" codes appear in answers
	// quoted by public client code, "guess" codes are names the API's style
	// suggests and that nobody has been seen receiving.
	seen string
}

// errorCodeRule is THE table from Freelancer error_code to error class. Keys
// are the part after the namespace ("ProjectExceptionCodes.DUPLICATE_BID" ->
// "DUPLICATE_BID"), upper case. It applies to 4xx answers and to error
// envelopes in 200s to reads; a 5xx or a broken answer to a bid POST is
// ambiguous whatever code it carries. A code not in the table falls back to
// the HTTP status (statusRule). It is a switch, not a map, so that nothing
// can change it at run time.
func errorCodeRule(key string) (codeRule, bool) {
	switch key {
	// Already bid.
	case "DUPLICATE_BID", "ALREADY_BID_ON_PROJECT":
		return codeRule{marketplace.ErrAlreadyBid, ReasonAlreadyBid, "observed"}, true
	// Project no longer takes bids.
	case "PROJECT_NOT_ACTIVE", "PROJECT_CLOSED", "PROJECT_ENDED":
		return codeRule{marketplace.ErrPostingClosed, ReasonClosed, "guess"}, true
	// Not found.
	case "PROJECT_NOT_FOUND":
		return codeRule{marketplace.ErrPermanent, ReasonNotFound, "observed"}, true
	case "NOT_FOUND":
		return codeRule{marketplace.ErrPermanent, ReasonNotFound, "guess"}, true
	// The bid itself is unacceptable.
	case "BID_DESCRIPTION_CONTAINS_EMAIL":
		return codeRule{marketplace.ErrPermanent, ReasonInvalidBid, "observed"}, true
	// This account may not bid on this project (per project, not per
	// account: archive the posting, keep bidding elsewhere).
	case "BID_MINIMUM_REQUIREMENT_NOT_MET", "RESTRICTED_FROM_BIDDING_PREMIUM_VERIFIED", "RESTRICTED_FROM_BIDDING_ON_FEATURED":
		return codeRule{marketplace.ErrPermanent, ReasonNotEligible, "observed"}, true
	// Slow down.
	case "TOO_MANY_REQUESTS", "BID_TOO_EARLY":
		return codeRule{marketplace.ErrRateLimited, ReasonRateLimited, "observed"}, true
	// The account's bid allowance is spent; without a Retry-After it waits
	// defaultBidLimitRetryAfter.
	case "BID_LIMIT_EXCEEDED":
		return codeRule{marketplace.ErrRateLimited, ReasonBidLimit, "observed"}, true
	// Auth.
	case "NOT_AUTHENTICATED":
		return codeRule{marketplace.ErrPermanent, ReasonUnauthorized, "observed"}, true
	case "UNAUTHORIZED":
		return codeRule{marketplace.ErrPermanent, ReasonUnauthorized, "guess"}, true
	// Our request is malformed: a bug here, not the posting's fault.
	case "BAD_FORM":
		return codeRule{marketplace.ErrPermanent, ReasonInvalidInput, "observed"}, true
	}
	return codeRule{}, false
}

// lookupCode applies the table. Reads only take rules that make sense for a
// read: "already bid" or "closed" on a search is the status's business.
func lookupCode(code string, bid bool) (codeRule, bool) {
	r, ok := errorCodeRule(codeKey(code))
	if !ok || (!bid && (r.class == marketplace.ErrAlreadyBid || r.class == marketplace.ErrPostingClosed)) {
		return codeRule{}, false
	}
	return r, true
}

// statusRule classifies an error answer by HTTP status alone. bid says the
// request was the bid POST, where a 4xx other than auth, 404 and 429 is
// taken as "the bid was refused as invalid".
func statusRule(status int, bid bool) (error, string) {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return marketplace.ErrPermanent, ReasonUnauthorized
	case status == http.StatusNotFound:
		return marketplace.ErrPermanent, ReasonNotFound
	case status == http.StatusGone:
		return marketplace.ErrPostingClosed, ReasonClosed
	case status == http.StatusTooManyRequests:
		return marketplace.ErrRateLimited, ReasonRateLimited
	case status >= 400 && status <= 499 && bid:
		return marketplace.ErrPermanent, ReasonInvalidBid
	case status == http.StatusBadRequest || status == http.StatusConflict || status == http.StatusUnprocessableEntity:
		return marketplace.ErrPermanent, ReasonBadRequest
	case status >= 500 && status <= 599:
		return marketplace.ErrTransient, "http_" + strconv.Itoa(status)
	}
	return marketplace.ErrPermanent, ReasonUnexpected
}

// envelope is a lenient view of any answer: fields of the wrong type must
// not hide what the status code says.
type envelope struct {
	Status    string
	Result    json.RawMessage // aliases the answer's body: never changed
	Message   string
	Code      string
	RequestID string
}

// wireEnvelope is the envelope as sent. json.Unmarshal skips a field of the
// wrong type and fills the others, which is the leniency wanted.
type wireEnvelope struct {
	Status    string   `json:"status"`
	Result    rawAlias `json:"result"`
	Message   string   `json:"message"`
	Code      string   `json:"error_code"`
	RequestID string   `json:"request_id"`
	// Newer answers nest it: {"error":{"code":...,"detail":...}}.
	Error struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	} `json:"error"`
}

// rawAlias is json.RawMessage without the copy: json.Unmarshal hands an
// Unmarshaler a slice of its input, and the answer's body outlives every
// use of its result.
type rawAlias []byte

func (r *rawAlias) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// parseEnvelope reads an answer's envelope. It fails for a body that is not
// a JSON object, and for one with more values than any answer of the API
// has (before decoding anything: see jsonstream.CheckValues).
func parseEnvelope(body []byte) (envelope, error) {
	if err := jsonstream.CheckValues(body, maxValues); err != nil {
		return envelope{}, err
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return envelope{}, errors.New("not a JSON object")
	}
	var w wireEnvelope
	if err := json.Unmarshal(body, &w); err != nil && !errors.As(err, new(*json.UnmarshalTypeError)) {
		return envelope{}, err
	}
	e := envelope{Status: w.Status, Result: json.RawMessage(w.Result), Message: w.Message, Code: w.Code, RequestID: w.RequestID}
	if e.Code == "" {
		e.Code = w.Error.Code
		if e.Message == "" {
			e.Message = w.Error.Detail
		}
	}
	return e, nil
}

// codeKey normalises an error_code for the table.
func codeKey(code string) string {
	if i := strings.LastIndexByte(code, '.'); i >= 0 {
		code = code[i+1:]
	}
	return strings.ToUpper(strings.TrimSpace(code))
}

// answerError builds the classified error of a non-success answer. bid marks
// the bid POST; callers handle its 5xx and 2xx themselves (ambiguous).
func answerError(op string, status int, header http.Header, body []byte, bid bool, now time.Time) *marketplace.Error {
	env, _ := parseEnvelope(body)
	class, reason := statusRule(status, bid)
	code := textsafe.Line(env.Code, maxCodeBytes)
	if status >= 400 && status <= 499 && env.Code != "" {
		if r, ok := lookupCode(env.Code, bid); ok {
			class, reason = r.class, r.reason
		}
	}
	msg := fmt.Sprintf("HTTP %d", status)
	if code != "" {
		msg += " " + code
	}
	if env.Message != "" {
		msg += ": " + textsafe.Line(env.Message, maxMessageBytes)
	}
	if env.RequestID != "" {
		msg += " (request_id " + textsafe.Line(env.RequestID, 64) + ")"
	}
	err := marketplace.NewError(class, op, reason, errors.New(msg))
	if class == marketplace.ErrRateLimited {
		err.RetryAfter = parseRetryAfter(header.Get("Retry-After"), now)
		if err.RetryAfter == 0 && reason == ReasonBidLimit {
			err.RetryAfter = defaultBidLimitRetryAfter
		}
	}
	return err
}

// parseRetryAfter reads delay-seconds or an HTTP date (see httpx.RetryAfter).
func parseRetryAfter(v string, now time.Time) time.Duration { return httpx.RetryAfter(v, now) }

// successResult returns the result of a 200 {"status":"success"} answer to a
// GET, or a classified error.
func successResult(op string, status int, header http.Header, body []byte, now time.Time) (json.RawMessage, error) {
	if status != http.StatusOK {
		return nil, answerError(op, status, header, body, false, now)
	}
	env, err := parseEnvelope(body)
	if err != nil {
		if json.Valid(body) {
			return nil, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, fmt.Errorf("HTTP 200: %w", err))
		}
		// Broken JSON on a 200 is likely a cut transfer: try again.
		return nil, marketplace.NewError(marketplace.ErrTransient, op, ReasonMalformed, errors.New("HTTP 200 with a body that is not a JSON object"))
	}
	if env.Status != "success" {
		if env.Status == "error" && env.Code != "" {
			if r, ok := lookupCode(env.Code, false); ok {
				return nil, marketplace.NewError(r.class, op, r.reason, fmt.Errorf("HTTP 200 status error %s", textsafe.Line(env.Code, maxCodeBytes)))
			}
		}
		return nil, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, fmt.Errorf("HTTP 200 with envelope status %q", textsafe.Line(env.Status, 32)))
	}
	if len(env.Result) == 0 || bytes.Equal(env.Result, []byte("null")) {
		return nil, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, errors.New(`success envelope without "result"`))
	}
	return env.Result, nil
}

// Wire shapes, as the API documents them (fields bidder does not use are
// left out). Numbers are json.Number so that an ID never goes through a
// float64 and a timestamp may be sent as 1.6e9 or "1646737780".

type wireProject struct {
	ID                 json.Number     `json:"id"`
	OwnerID            json.Number     `json:"owner_id"`
	Title              string          `json:"title"`
	Status             string          `json:"status"`
	SeoURL             string          `json:"seo_url"`
	Currency           *wireCurrency   `json:"currency"`
	PreviewDescription string          `json:"preview_description"`
	Description        string          `json:"description"`
	Type               string          `json:"type"`
	Budget             *wireBudget     `json:"budget"`
	TimeSubmitted      json.RawMessage `json:"time_submitted"`
	Jobs               []wireJob       `json:"jobs"`
}

type wireCurrency struct {
	Code string `json:"code"`
}

type wireBudget struct {
	Minimum *float64 `json:"minimum"`
	Maximum *float64 `json:"maximum"`
}

type wireJob struct {
	Name string `json:"name"`
}

type wireUser struct {
	ID                 json.Number `json:"id"`
	EmployerReputation *struct {
		EntireHistory *struct {
			Overall *float64 `json:"overall"`
		} `json:"entire_history"`
	} `json:"employer_reputation"`
	Location *struct {
		Country *struct {
			Code string `json:"code"`
			Name string `json:"name"`
		} `json:"country"`
	} `json:"location"`
}

type wireBid struct {
	ID            json.Number     `json:"id"`
	BidderID      json.Number     `json:"bidder_id"`
	ProjectID     json.Number     `json:"project_id"`
	Amount        *float64        `json:"amount"`
	Retracted     bool            `json:"retracted"`
	TimeSubmitted json.RawMessage `json:"time_submitted"`
}

// positiveID parses an ID the API sends as a number (or, leniently, a string
// of digits).
func positiveID(n json.Number) (int64, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(n.String()), 10, 64)
	return v, err == nil && v > 0
}

// unixTime reads a unix-seconds timestamp sent as a number or a numeric
// string; absent or unreadable is the zero time.
func unixTime(raw json.RawMessage) time.Time {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return time.Time{}
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
	// 1e12 seconds is year 33658: anything past it is not seconds.
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1e12 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0).UTC()
}

// projectsPage is a decoded /projects/active/ answer: the IDs of every
// project in server order (for the cursor's continuity check, including
// projects that could not be mapped), the mapped postings, and what was
// dropped: how many, and the first few problems.
type projectsPage struct {
	ids      []int64
	times    []time.Time
	postings []marketplace.Posting
	dropped  int
	problems []error // the first maxDroppedLogged
}

func (p *projectsPage) drop(err error) {
	p.dropped++
	if len(p.problems) < maxDroppedLogged {
		p.problems = append(p.problems, err)
	}
}

// decodeProjects turns an answer to GET /projects/active/ asked for limit
// projects into a page. A project that cannot be mapped (no currency, an
// unknown type...) is dropped and reported, not fatal: failing the page
// would stall the scan on one odd project forever, and a posting bidder
// cannot read is one it could not bid on correctly anyway. More projects
// than asked for is a broken answer: decoding stops there.
func decodeProjects(marketplaceID, siteBase string, limit int, status int, header http.Header, body []byte, now time.Time) (projectsPage, error) {
	const op = "scan"
	result, err := successResult(op, status, header, body, now)
	if err != nil {
		return projectsPage{}, err
	}
	var (
		page     projectsPage
		projects []wireProject // owners are mapped once users, which may come after, are read
		list     bool
		users    = map[string]json.RawMessage{}
		d        = jsonstream.New(result)
	)
	_, err = d.Object(maxMembers, func(key string) error {
		switch {
		case key == "projects" && !list:
			null, err := d.Array(func(i int) error {
				if i >= limit {
					return fmt.Errorf("%w: more than %d projects for limit %d", jsonstream.ErrTooMany, limit, limit)
				}
				var wp wireProject
				err := d.Decode(&wp)
				if errors.As(err, new(*jsonstream.ValueError)) {
					// Without an ID it cannot even take part in the
					// continuity check; the check then just finds less.
					page.drop(fmt.Errorf("projects[%d]: %w", i, err))
					return nil
				}
				projects = append(projects, wp)
				return err
			})
			list = !null
			return err
		case key == "users":
			_, err := d.Object(maxUsers, func(id string) error {
				var raw json.RawMessage
				if err := d.Decode(&raw); err != nil {
					return err
				}
				users[id] = raw
				return nil
			})
			return err
		}
		return d.Skip()
	})
	if err == nil && !list {
		err = errors.New(`no "projects" list`)
	}
	if err != nil {
		return projectsPage{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, fmt.Errorf("result: %w", err))
	}
	seen := make(map[int64]bool, len(projects))
	for i, wp := range projects {
		id, ok := positiveID(wp.ID)
		if !ok {
			page.drop(fmt.Errorf("projects[%d]: id %q is not a positive integer", i, textsafe.Line(wp.ID.String(), 32)))
			continue
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		page.ids = append(page.ids, id)
		submitted := unixTime(wp.TimeSubmitted)
		page.times = append(page.times, submitted)
		p, err := projectPosting(marketplaceID, siteBase, id, wp, submitted, users)
		if err != nil {
			page.drop(fmt.Errorf("project %d: %w", id, err))
			continue
		}
		page.postings = append(page.postings, p)
	}
	return page, nil
}

// decodeProject turns an answer to GET /projects/0.1/projects/<id>/ into
// the posting: the project asked for, or an error (a project that is not
// the one asked for, or not usable as a posting, is ErrPermanent).
func decodeProject(marketplaceID, siteBase string, id int64, status int, header http.Header, body []byte, now time.Time) (marketplace.Posting, error) {
	const op = "get_project"
	result, err := successResult(op, status, header, body, now)
	if err != nil {
		return marketplace.Posting{}, err
	}
	invalid := func(err error) (marketplace.Posting, error) {
		return marketplace.Posting{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, fmt.Errorf("result: %w", err))
	}
	var wp wireProject
	if err := jsonstream.New(result).Decode(&wp); err != nil {
		return invalid(err)
	}
	if got, ok := positiveID(wp.ID); !ok || got != id {
		return invalid(fmt.Errorf("asked for project %d, got id %q", id, textsafe.Line(wp.ID.String(), 32)))
	}
	p, err := projectPosting(marketplaceID, siteBase, id, wp, unixTime(wp.TimeSubmitted), nil)
	if err != nil {
		return invalid(fmt.Errorf("project %d: %w", id, err))
	}
	return p, nil
}

func projectPosting(marketplaceID, siteBase string, id int64, wp wireProject, submitted time.Time, users map[string]json.RawMessage) (marketplace.Posting, error) {
	var budgetType marketplace.BudgetType
	switch strings.ToLower(strings.TrimSpace(wp.Type)) {
	case "fixed":
		budgetType = marketplace.BudgetFixed
	case "hourly":
		budgetType = marketplace.BudgetHourly
	default:
		return marketplace.Posting{}, fmt.Errorf("type %q is neither fixed nor hourly", textsafe.Line(wp.Type, 32))
	}
	if wp.Currency == nil || !isCurrency(strings.ToUpper(strings.TrimSpace(wp.Currency.Code))) {
		return marketplace.Posting{}, errors.New("no 3-letter currency code")
	}
	if wp.Budget == nil || wp.Budget.Minimum == nil {
		return marketplace.Posting{}, errors.New("no budget minimum")
	}
	lo := *wp.Budget.Minimum
	hi := lo
	// A budget may have no maximum ("at least X"); then the range is X..X.
	if wp.Budget.Maximum != nil && *wp.Budget.Maximum > 0 {
		hi = *wp.Budget.Maximum
	}
	if !(lo >= 0 && hi >= lo) || math.IsInf(hi, 0) {
		return marketplace.Posting{}, fmt.Errorf("budget %v..%v is not 0 <= min <= max", lo, hi)
	}
	status := marketplace.StatusClosed
	if strings.EqualFold(strings.TrimSpace(wp.Status), "active") {
		status = marketplace.StatusOpen
	}
	desc := wp.Description
	if strings.TrimSpace(desc) == "" {
		desc = wp.PreviewDescription
	}
	var skills []string
	for _, j := range wp.Jobs {
		if name := strings.TrimSpace(textsafe.Line(j.Name, 0)); name != "" {
			skills = append(skills, name)
		}
	}
	return marketplace.Posting{
		MarketplaceID: marketplaceID,
		ID:            strconv.FormatInt(id, 10),
		Title:         textsafe.Line(wp.Title, 0),
		Description:   textsafe.Text(desc),
		Budget: marketplace.Budget{
			Type:     budgetType,
			Min:      lo,
			Max:      hi,
			Currency: strings.ToUpper(strings.TrimSpace(wp.Currency.Code)),
		},
		Skills:   skills,
		URL:      projectURL(siteBase, id, wp.SeoURL),
		PostedAt: submitted,
		Client:   ownerClient(wp.OwnerID, users),
		Status:   status,
	}, nil
}

// ownerClient maps the owner's entry of the answer's users map, present when
// the request asked for user details. Missing data is zero: the rules then
// treat the client as unrated. Freelancer's project answers carry no total
// spend, so TotalSpend is always 0.
func ownerClient(ownerID json.Number, users map[string]json.RawMessage) marketplace.Client {
	var c marketplace.Client
	id, ok := positiveID(ownerID)
	if !ok || users == nil {
		return c
	}
	raw, ok := users[strconv.FormatInt(id, 10)]
	if !ok {
		return c
	}
	var u wireUser
	if json.Unmarshal(raw, &u) != nil {
		return c
	}
	if r := u.EmployerReputation; r != nil && r.EntireHistory != nil && r.EntireHistory.Overall != nil {
		if v := *r.EntireHistory.Overall; v >= 0 && v <= 5 {
			c.Rating = v
		}
	}
	if l := u.Location; l != nil && l.Country != nil {
		// Rules compare countries as config writes them (ISO codes such as
		// "US"); the name is the fallback when there is no code.
		if code := strings.TrimSpace(l.Country.Code); code != "" {
			c.Country = strings.ToUpper(textsafe.Line(code, 8))
		} else {
			c.Country = textsafe.Line(strings.TrimSpace(l.Country.Name), 64)
		}
	}
	return c
}

// projectURL is the project's page on the site the API belongs to, so the
// sandbox's postings link to the sandbox.
func projectURL(siteBase string, id int64, seo string) string {
	seo = strings.Trim(seo, "/")
	if seo == "" || strings.Contains(seo, "..") || !isURLPath(seo) {
		return siteBase + "/projects/" + strconv.FormatInt(id, 10)
	}
	return siteBase + "/projects/" + seo
}

func isURLPath(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_./~", c) >= 0) {
			return false
		}
	}
	return true
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// placedBid validates a wire bid against the project and bidder it must be
// for. currency is the caller's (bids carry none: they are in the project's
// currency).
func placedBid(projectID, selfID int64, currency string, b wireBid) (marketplace.PlacedBid, error) {
	id, ok := positiveID(b.ID)
	if !ok {
		return marketplace.PlacedBid{}, fmt.Errorf("bid id %q is not a positive integer", textsafe.Line(b.ID.String(), 32))
	}
	if pid, ok := positiveID(b.ProjectID); !ok || pid != projectID {
		return marketplace.PlacedBid{}, fmt.Errorf("bid %d is on project %q, not %d", id, textsafe.Line(b.ProjectID.String(), 32), projectID)
	}
	if b.BidderID != "" {
		if bid, ok := positiveID(b.BidderID); !ok || bid != selfID {
			return marketplace.PlacedBid{}, fmt.Errorf("bid %d is by bidder %q, not %d", id, textsafe.Line(b.BidderID.String(), 32), selfID)
		}
	}
	pb := marketplace.PlacedBid{
		ID:        strconv.FormatInt(id, 10),
		PostingID: strconv.FormatInt(projectID, 10),
		Currency:  currency,
		CreatedAt: unixTime(b.TimeSubmitted),
	}
	if b.Amount != nil && !math.IsNaN(*b.Amount) && !math.IsInf(*b.Amount, 0) {
		pb.Amount = *b.Amount
	}
	return pb, nil
}

// decodeBidAnswer turns a complete answer to the bid POST into a PlacedBid
// or a classified error. Anything it cannot make sense of is ErrAmbiguous:
// Freelancer got the bid and may have stored it.
func decodeBidAnswer(projectID, selfID int64, currency string, status int, header http.Header, body []byte, now time.Time) (marketplace.PlacedBid, error) {
	const op = "place_bid"
	ambiguous := func(reason string, cause error) (marketplace.PlacedBid, error) {
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrAmbiguous, op, reason, cause)
	}
	switch {
	case status >= 200 && status <= 299:
		env, err := parseEnvelope(body)
		if err != nil {
			return ambiguous(ReasonMalformed, fmt.Errorf("HTTP %d with a body that is not a usable JSON object: %w", status, err))
		}
		if env.Status != "success" {
			// Even a 2xx "error" envelope is not trusted to mean "nothing
			// stored": reconciliation is cheap, a duplicate is not.
			return ambiguous(ReasonInvalid, fmt.Errorf("HTTP %d with envelope status %q %s", status, textsafe.Line(env.Status, 32), textsafe.Line(env.Code, maxCodeBytes)))
		}
		var b wireBid
		if err := json.Unmarshal(env.Result, &b); err != nil {
			return ambiguous(ReasonInvalid, fmt.Errorf("HTTP %d: result is not a bid: %w", status, err))
		}
		pb, err := placedBid(projectID, selfID, currency, b)
		if err != nil {
			return ambiguous(ReasonInvalid, fmt.Errorf("HTTP %d: %w", status, err))
		}
		return pb, nil
	case status >= 400 && status <= 499:
		// A 4xx means the bid was refused: nothing was stored.
		return marketplace.PlacedBid{}, answerError(op, status, header, body, true, now)
	case status >= 500 && status <= 599:
		env, _ := parseEnvelope(body)
		return ambiguous("http_"+strconv.Itoa(status), fmt.Errorf("HTTP %d %s", status, textsafe.Line(env.Code, maxCodeBytes)))
	}
	// 1xx, 3xx: Freelancer saw the bid and said something unexpected.
	return ambiguous(ReasonUnexpected, fmt.Errorf("HTTP %d", status))
}

// decodeFindBid turns an answer to GET /bids/?projects[]=&bidders[]= into
// this account's oldest bid on the project, if any. A retracted bid counts:
// it was placed, and bidding again would be a second bid.
func decodeFindBid(projectID, selfID int64, status int, header http.Header, body []byte, now time.Time) (marketplace.PlacedBid, bool, error) {
	const op = "find_bid"
	result, err := successResult(op, status, header, body, now)
	if err != nil {
		return marketplace.PlacedBid{}, false, err
	}
	var (
		best   marketplace.PlacedBid
		bestID int64
		found  bool
		list   bool
		d      = jsonstream.New(result)
	)
	bid := func(i int) error {
		if i >= maxFindBids {
			return jsonstream.TooMany(maxFindBids, "bids (the limit asked for)")
		}
		var b wireBid
		if err := d.Decode(&b); err != nil {
			return fmt.Errorf("bids[%d]: %w", i, err)
		}
		// The filters are the server's job; a server that ignored them must
		// not make another bidder's bid look like ours.
		if pid, ok := positiveID(b.ProjectID); !ok || pid != projectID {
			return nil
		}
		if bid, ok := positiveID(b.BidderID); !ok || bid != selfID {
			return nil
		}
		pb, err := placedBid(projectID, selfID, "", b)
		if err != nil {
			return fmt.Errorf("bids[%d]: %w", i, err)
		}
		// Oldest first; bid IDs break ties (they grow with time).
		id, _ := positiveID(b.ID)
		if !found || pb.CreatedAt.Before(best.CreatedAt) || (pb.CreatedAt.Equal(best.CreatedAt) && id < bestID) {
			best, bestID, found = pb, id, true
		}
		return nil
	}
	_, err = d.Object(maxMembers, func(key string) error {
		if key != "bids" || list {
			return d.Skip()
		}
		null, err := d.Array(bid)
		list = !null
		return err
	})
	if err == nil && !list {
		err = errors.New(`result has no "bids" list`)
	}
	if err != nil {
		return marketplace.PlacedBid{}, false, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, err)
	}
	return best, found, nil
}

// decodeSelf reads the user ID from GET /users/0.1/self/.
func decodeSelf(status int, header http.Header, body []byte, now time.Time) (int64, error) {
	const op = "get_self"
	result, err := successResult(op, status, header, body, now)
	if err != nil {
		return 0, err
	}
	var u struct {
		ID json.Number `json:"id"`
	}
	if err := json.Unmarshal(result, &u); err != nil {
		return 0, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, err)
	}
	id, ok := positiveID(u.ID)
	if !ok {
		return 0, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, fmt.Errorf("user id %q is not a positive integer", textsafe.Line(u.ID.String(), 32)))
	}
	return id, nil
}
