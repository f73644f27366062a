package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/httpx"
	"github.com/bidder/bidder/marketplace/internal/jsonstream"
)

// Decoding of the server's answers into domain values or classified errors.
// These functions see only (status, header, body), so the fuzz tests can
// drive them with anything a broken or hostile server might send.

// Reasons the adapter sets when the marketplace gave none of its own.
const (
	ReasonMalformed    = "malformed_response" // not JSON, truncated, empty
	ReasonInvalid      = "invalid_response"   // JSON that breaks the contract
	ReasonTooLarge     = httpx.ReasonTooLarge // "response_too_large"
	ReasonUnexpected   = "unexpected_status"
	ReasonNotSent      = httpx.ReasonNotSent      // "not_sent": failed before the request was written
	ReasonNoAnswer     = httpx.ReasonNoAnswer     // "no_answer": sent, then no (complete) answer
	ReasonInvalidInput = httpx.ReasonInvalidInput // "invalid_request"
)

const (
	maxRetryAfter       = httpx.MaxRetryAfter
	maxDetailInErrorLen = 200
)

// Limits of a decoded answer, sized to the largest a server keeping to the
// contract sends, so that what an answer costs is bounded by them and not by
// how many elements fit under the byte cap (see jsonstream).
const (
	// maxMembers bounds the members of an answer's top-level object: the
	// contract's have two or three, extensions may add some.
	maxMembers = 64
	// maxFindBids bounds GET /v1/bids: one account's bids on one posting,
	// one unless something already went wrong.
	maxFindBids = 100
	// maxValues bounds the JSON values in one answer. A full page (500
	// postings of some 35 values, a few skills each) has under 20,000.
	maxValues = 1 << 16
)

// errorBody is a lenient view of any error answer: fields of the wrong type
// must not hide the status code's meaning. (json.Unmarshal skips a field of
// the wrong type and fills the others.)
func errorBody(body []byte) wireError {
	var e wireError
	_ = unmarshal(body, &e)
	e.Detail = textsafe.Line(e.Detail, maxDetailInErrorLen)
	return e
}

func reasonOr(code, fallback string) string {
	if code != "" && validID(code) && len(code) <= 64 {
		return code
	}
	return fallback
}

// statusError classifies a non-success answer to a request that cannot have
// changed anything (a GET), or the parts of a bid's table that mean "nothing
// was done" (4xx).
func statusError(op string, status int, header http.Header, body []byte) *marketplace.Error {
	e := errorBody(body)
	cause := fmt.Errorf("HTTP %d", status)
	if e.Detail != "" {
		cause = fmt.Errorf("HTTP %d: %s", status, e.Detail)
	}
	switch {
	case status == http.StatusUnauthorized:
		return marketplace.NewError(marketplace.ErrPermanent, op, codeUnauthorized, cause)
	case status == http.StatusNotFound:
		return marketplace.NewError(marketplace.ErrPermanent, op, codeNotFound, cause)
	case status == http.StatusGone:
		return marketplace.NewError(marketplace.ErrPostingClosed, op, codeClosed, cause)
	case status == http.StatusUnprocessableEntity:
		return marketplace.NewError(marketplace.ErrPermanent, op, codeInvalidBid, cause)
	case status == http.StatusTooManyRequests:
		err := marketplace.NewError(marketplace.ErrRateLimited, op, codeRateLimited, cause)
		err.RetryAfter = parseRetryAfter(header.Get("Retry-After"), time.Now())
		return err
	case status == http.StatusBadRequest:
		return marketplace.NewError(marketplace.ErrPermanent, op, reasonOr(e.Error, codeBadRequest), cause)
	case status >= 500 && status <= 599:
		return marketplace.NewError(marketplace.ErrTransient, op, reasonOr(e.Error, "http_"+strconv.Itoa(status)), cause)
	}
	return marketplace.NewError(marketplace.ErrPermanent, op, ReasonUnexpected, cause)
}

// parseRetryAfter reads delay-seconds or an HTTP date (see httpx.RetryAfter).
func parseRetryAfter(v string, now time.Time) time.Duration { return httpx.RetryAfter(v, now) }

// decodeError classifies a body that did not decode: broken JSON (possibly a
// truncated transfer) may go away on retry, valid JSON of the wrong shape
// (wrong types, bad timestamps) will not.
func decodeError(op string, body []byte, err error) *marketplace.Error {
	if json.Valid(body) {
		return marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, err)
	}
	return marketplace.NewError(marketplace.ErrTransient, op, ReasonMalformed, err)
}

// decodeBidAnswer turns a complete answer to a bid POST into a PlacedBid or a
// classified error. Anything it cannot make sense of is ErrAmbiguous: the
// server got the bid and may have stored it.
func decodeBidAnswer(postingID string, status int, header http.Header, body []byte) (marketplace.PlacedBid, error) {
	const op = "place_bid"
	switch {
	case status == http.StatusCreated || status == http.StatusOK:
		var a wireBidAnswer
		if err := unmarshal(body, &a); err != nil {
			// Ambiguous either way; the reason still tells broken from wrong.
			return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrAmbiguous, op, decodeError(op, body, err).Reason, err)
		}
		if a.Bid == nil {
			return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrAmbiguous, op, ReasonInvalid, errors.New(`answer has no "bid"`))
		}
		pb, err := placedBid(postingID, *a.Bid)
		if err != nil {
			return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrAmbiguous, op, ReasonInvalid, err)
		}
		return pb, nil

	case status == http.StatusConflict:
		// The status alone says the account already bid; the bid in the body
		// is a bonus, dropped if it is not a valid bid on this posting.
		err := marketplace.NewError(marketplace.ErrAlreadyBid, op, codeAlreadyBid, nil)
		var a wireBidAnswer
		if unmarshal(body, &a) == nil && a.Bid != nil {
			if pb, perr := placedBid(postingID, *a.Bid); perr == nil {
				err.Existing = &pb
			}
		}
		return marketplace.PlacedBid{}, err

	case status == http.StatusServiceUnavailable:
		// The contract's 503 {"error":...} is error_rate: answered "before
		// doing anything". A 503 without that body (a proxy's, say) promises
		// nothing.
		if e := errorBody(body); e.Error != "" {
			return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrTransient, op, reasonOr(e.Error, "http_503"), fmt.Errorf("HTTP 503"))
		}
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrAmbiguous, op, "http_503", errors.New("HTTP 503 without the contract's error body"))

	case status >= 500 && status <= 599:
		e := errorBody(body)
		return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrAmbiguous, op, reasonOr(e.Error, "http_"+strconv.Itoa(status)), fmt.Errorf("HTTP %d", status))

	case status >= 400 && status <= 499:
		// Every 4xx in the table means the bid was refused.
		return marketplace.PlacedBid{}, statusError(op, status, header, body)
	}
	// 1xx, 3xx and other 2xx are not in the table: the server saw the bid
	// and said something unexpected, so it may exist.
	return marketplace.PlacedBid{}, marketplace.NewError(marketplace.ErrAmbiguous, op, ReasonUnexpected, fmt.Errorf("HTTP %d", status))
}

// placedBid validates a wire bid against the posting it is supposed to be on.
func placedBid(postingID string, b wireBid) (marketplace.PlacedBid, error) {
	switch {
	case !validID(b.ID):
		return marketplace.PlacedBid{}, fmt.Errorf("bid id %q is not 1..128 printable bytes", b.ID)
	case b.PostingID != postingID:
		return marketplace.PlacedBid{}, fmt.Errorf("bid %s is on posting %q, not %q", b.ID, b.PostingID, postingID)
	case b.CreatedAt.IsZero():
		return marketplace.PlacedBid{}, fmt.Errorf("bid %s has no created_at", b.ID)
	}
	return marketplace.PlacedBid{
		ID:             b.ID,
		PostingID:      b.PostingID,
		Amount:         b.Amount,
		Currency:       textsafe.Line(b.Currency, 0),
		FencingToken:   b.FencingToken,
		IdempotencyKey: textsafe.Line(b.IdempotencyKey, 0),
		CreatedAt:      b.CreatedAt,
	}, nil
}

// decodeFindBid turns an answer to GET /v1/bids into this account's oldest
// bid on the posting, if any.
func decodeFindBid(postingID string, status int, header http.Header, body []byte) (marketplace.PlacedBid, bool, error) {
	const op = "find_bid"
	if status != http.StatusOK {
		return marketplace.PlacedBid{}, false, statusError(op, status, header, body)
	}
	var first marketplace.PlacedBid
	n, list := 0, false
	d := jsonstream.New(body)
	err := walkAnswer(body, d, func(key string) error {
		if key != "bids" || list {
			return d.Skip()
		}
		null, err := d.Array(func(i int) error {
			if i == maxFindBids {
				return jsonstream.TooMany(maxFindBids, "bids on one posting")
			}
			var b wireBid
			if err := d.Decode(&b); err != nil {
				return fmt.Errorf("bids[%d]: %w", i, err)
			}
			pb, err := placedBid(postingID, b)
			if err != nil {
				return fmt.Errorf("bids[%d]: %w", i, err)
			}
			if i == 0 {
				first = pb
			}
			n++
			return nil
		})
		list = !null
		return err
	})
	if err == nil && !list {
		err = errors.New(`answer has no "bids" list`)
	}
	if err != nil {
		return marketplace.PlacedBid{}, false, decodeError(op, body, err)
	}
	return first, n > 0, nil
}

// walkAnswer checks body's value count, walks its top-level object with fn
// (see jsonstream.Decoder.Object) and checks nothing follows it.
func walkAnswer(body []byte, d *jsonstream.Decoder, fn func(key string) error) error {
	if err := jsonstream.CheckValues(body, maxValues); err != nil {
		return err
	}
	if _, err := d.Object(maxMembers, fn); err != nil {
		return err
	}
	return d.End()
}

// unmarshal is json.Unmarshal of an answer holding one small object, after
// the value count check.
func unmarshal(body []byte, v any) error {
	if err := jsonstream.CheckValues(body, maxValues); err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// decodePage turns an answer to GET /v1/postings into a Page. A posting that
// breaks the contract fails the whole page: skipping it would lose a posting
// silently, and fabricating one would bid on something that does not exist.
// Postings are decoded one by one, and a list longer than limit stops the
// decoding at limit+1.
func decodePage(marketplaceID, cursor string, limit int, status int, header http.Header, body []byte) (marketplace.Page, error) {
	const op = "scan"
	if status != http.StatusOK {
		return marketplace.Page{}, statusError(op, status, header, body)
	}
	var (
		page     marketplace.Page
		list     bool
		next     *string
		seen     = map[string]bool{}
		d        = jsonstream.New(body)
		postings = func(i int) error {
			if i >= limit {
				return fmt.Errorf("%w: more than %d postings for limit %d", jsonstream.ErrTooMany, limit, limit)
			}
			var wp wirePosting
			if err := d.Decode(&wp); err != nil {
				return fmt.Errorf("postings[%d]: %w", i, err)
			}
			p, err := posting(marketplaceID, wp)
			if err != nil {
				return fmt.Errorf("postings[%d]: %w", i, err)
			}
			if seen[p.ID] {
				return fmt.Errorf("postings[%d]: id %q repeated in one page", i, p.ID)
			}
			seen[p.ID] = true
			page.Postings = append(page.Postings, p)
			return nil
		}
	)
	err := walkAnswer(body, d, func(key string) error {
		switch {
		case key == "postings" && !list:
			null, err := d.Array(postings)
			list = !null
			return err
		case key == "next_cursor" && next == nil:
			return d.Decode(&next)
		}
		return d.Skip()
	})
	switch {
	case err != nil:
	case !list || next == nil:
		err = errors.New(`answer lacks "postings" or "next_cursor"`)
	case *next == "" && (len(page.Postings) > 0 || cursor != ""):
		// Only "nothing new from the start" may come back without a
		// cursor: any other empty cursor would restart the scan from the
		// beginning.
		err = errors.New("empty next_cursor")
	}
	if err != nil {
		return marketplace.Page{}, decodeError(op, body, err)
	}
	page.NextCursor = *next
	if page.Postings == nil {
		page.Postings = []marketplace.Posting{}
	}
	return page, nil
}

// decodePosting turns an answer to GET /v1/postings/{id} into a Posting.
func decodePosting(marketplaceID, id string, status int, header http.Header, body []byte) (marketplace.Posting, error) {
	const op = "get_posting"
	if status != http.StatusOK {
		return marketplace.Posting{}, statusError(op, status, header, body)
	}
	var wp wirePosting
	if err := unmarshal(body, &wp); err != nil {
		return marketplace.Posting{}, decodeError(op, body, err)
	}
	p, err := posting(marketplaceID, wp)
	if err == nil && p.ID != id {
		err = fmt.Errorf("asked for %q, got %q", id, p.ID)
	}
	if err != nil {
		return marketplace.Posting{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, err)
	}
	return p, nil
}

func posting(marketplaceID string, wp wirePosting) (marketplace.Posting, error) {
	b := wp.Budget
	switch {
	case !validID(wp.ID):
		return marketplace.Posting{}, fmt.Errorf("id %q is not 1..128 printable bytes", wp.ID)
	case wp.Status != string(marketplace.StatusOpen) && wp.Status != string(marketplace.StatusClosed):
		return marketplace.Posting{}, fmt.Errorf("posting %s: status %q is neither open nor closed", wp.ID, wp.Status)
	case b.Type != string(marketplace.BudgetFixed) && b.Type != string(marketplace.BudgetHourly):
		return marketplace.Posting{}, fmt.Errorf("posting %s: budget type %q is neither fixed nor hourly", wp.ID, b.Type)
	case !isCurrency(b.Currency):
		return marketplace.Posting{}, fmt.Errorf("posting %s: currency %q is not a 3-letter code", wp.ID, b.Currency)
	case !(b.Min >= 0 && b.Max >= b.Min) || math.IsInf(b.Max, 0):
		return marketplace.Posting{}, fmt.Errorf("posting %s: budget %v..%v is not 0 <= min <= max", wp.ID, b.Min, b.Max)
	case wp.PostedAt.IsZero():
		return marketplace.Posting{}, fmt.Errorf("posting %s: no posted_at", wp.ID)
	case !(wp.Client.Rating >= 0 && wp.Client.Rating <= 5):
		return marketplace.Posting{}, fmt.Errorf("posting %s: client rating %v is outside 0..5", wp.ID, wp.Client.Rating)
	case !(wp.Client.TotalSpend >= 0):
		return marketplace.Posting{}, fmt.Errorf("posting %s: client total_spend %v is negative", wp.ID, wp.Client.TotalSpend)
	}
	var skills []string
	for _, s := range wp.Skills {
		skills = append(skills, textsafe.Line(s, 0))
	}
	return marketplace.Posting{
		MarketplaceID: marketplaceID,
		ID:            wp.ID,
		Title:         textsafe.Line(wp.Title, 0),
		Description:   textsafe.Text(wp.Description),
		Budget: marketplace.Budget{
			Type:     marketplace.BudgetType(b.Type),
			Min:      b.Min,
			Max:      b.Max,
			Currency: b.Currency,
		},
		Skills:   skills,
		URL:      textsafe.Line(wp.URL, 0),
		PostedAt: wp.PostedAt.UTC(),
		Client: marketplace.Client{
			Rating:     wp.Client.Rating,
			TotalSpend: wp.Client.TotalSpend,
			Country:    textsafe.Line(wp.Client.Country, 0),
		},
		Status: marketplace.Status(wp.Status),
	}, nil
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
