package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/jsonstream"
	"github.com/bidder/bidder/marketplace/internal/statusbatch"
)

// The adapter's side of the outcomes extension (outcomes.go): bid statuses
// in batches and retracts.

// ReasonRetractTooLate is the reason of an ErrRetractTooLate answer.
const ReasonRetractTooLate = codeRetractTooLate

const (
	// maxStatusAnswerBytes caps a status answer: 100 entries are ~15 KiB.
	maxStatusAnswerBytes = 1 << 20
	maxStatusText        = statusbatch.MaxText
)

var (
	_ marketplace.StatusReader = (*Adapter)(nil)
	_ marketplace.Retracter    = (*Adapter)(nil)
)

// MaxStatusBatch is how many bids one BidStatuses call may carry.
func (a *Adapter) MaxStatusBatch() int { return maxStatusIDs }

// BidStatuses asks GET /v1/bids/status about up to MaxStatusBatch bids.
func (a *Adapter) BidStatuses(ctx context.Context, bids []marketplace.PlacedBid) ([]marketplace.BidStatus, error) {
	const op = "bid_statuses"
	if err := statusbatch.Check(op, bids, maxStatusIDs, validID); err != nil || len(bids) == 0 {
		return nil, err
	}
	q := url.Values{}
	for _, b := range bids {
		q.Add("id", b.ID)
	}
	api := a.api
	api.MaxBytes = maxStatusAnswerBytes
	ans, err := api.Get(ctx, op, a.endpoint(q, "v1", "bids", "status"))
	if err != nil {
		return nil, err
	}
	return decodeStatuses(bids, ans.Status, ans.Header, ans.Body)
}

// decodeStatuses turns an answer to GET /v1/bids/status into one status per
// bid asked about. Entries are decoded one at a time and the list is
// refused at the first entry beyond the bids asked about, so the answer's
// cost is bounded by the batch (see jsonstream).
func decodeStatuses(bids []marketplace.PlacedBid, status int, header http.Header, body []byte) ([]marketplace.BidStatus, error) {
	const op = "bid_statuses"
	if status != http.StatusOK {
		return nil, statusError(op, status, header, body)
	}
	got := statusbatch.NewCollector(bids)
	list := false
	d := jsonstream.New(body)
	err := walkAnswer(body, d, func(key string) error {
		if key != "statuses" || list {
			return d.Skip()
		}
		null, err := d.Array(func(i int) error {
			if i == len(bids) {
				return jsonstream.TooMany(len(bids), "statuses (the bids asked about)")
			}
			var ws wireBidStatus
			if err := d.Decode(&ws); err != nil {
				return fmt.Errorf("statuses[%d]: %w", i, err)
			}
			st, err := bidStatus(got, ws)
			if err == nil {
				err = got.Add(st)
			}
			if err != nil {
				return fmt.Errorf("statuses[%d]: %w", i, err)
			}
			return nil
		})
		list = !null
		return err
	})
	if err == nil && !list {
		err = errors.New(`answer has no "statuses" list`)
	}
	if err != nil {
		return nil, decodeError(op, body, err)
	}
	return got.Result(), nil
}

// bidStatus validates one entry against the bid it names.
func bidStatus(got *statusbatch.Collector, ws wireBidStatus) (marketplace.BidStatus, error) {
	asked, ok := got.Asked(ws.ID)
	switch {
	case !ok:
		return marketplace.BidStatus{}, fmt.Errorf("status of bid %q, which was not asked about", textsafe.Line(ws.ID, maxStatusText))
	case asked.PostingID != "" && ws.PostingID != asked.PostingID:
		return marketplace.BidStatus{}, fmt.Errorf("bid %s is on posting %q, not %q", ws.ID, textsafe.Line(ws.PostingID, maxStatusText), asked.PostingID)
	}
	st := marketplace.BidStatus{BidID: ws.ID, ChangedAt: ws.ChangedAt.UTC(), Text: ws.Status}
	switch ws.Status {
	case wirePending:
		st.Outcome = marketplace.OutcomePending
	case wireAwarded:
		st.Outcome = marketplace.OutcomeAwarded
	case wireRejected:
		st.Outcome = marketplace.OutcomeRejected
	case wireRetracted:
		st.Outcome = marketplace.OutcomeRetracted
	default:
		// A status this adapter does not know yet: reported, not fatal.
		st.Outcome = marketplace.OutcomeUnknown
	}
	return st, nil
}

// RetractBid sends POST /v1/bids/{id}/retract once. The posting ID goes in
// the body so the server refuses a bid ID that is not on that posting.
func (a *Adapter) RetractBid(ctx context.Context, postingID string, bid marketplace.PlacedBid) error {
	const op = "retract_bid"
	if err := checkPathID(op, postingID); err != nil {
		return err
	}
	if !validID(bid.ID) || bid.ID == "." || bid.ID == ".." {
		return marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, fmt.Errorf("bid id %q is not 1..128 printable bytes naming one path segment", textsafe.Line(bid.ID, maxStatusText)))
	}
	if bid.PostingID != "" && bid.PostingID != postingID {
		return marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, fmt.Errorf("bid %s is on posting %q, not %q", bid.ID, bid.PostingID, postingID))
	}
	body, err := json.Marshal(wireRetractRequest{PostingID: postingID})
	if err != nil {
		return marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, err)
	}
	ans, err := a.api.SendOnce(ctx, op, http.MethodPost, a.endpoint(nil, "v1", "bids", bid.ID, "retract"), "application/json", body, nil)
	if err != nil {
		return err
	}
	return decodeRetractAnswer(bid.ID, ans.Status, ans.Header, ans.Body)
}

// decodeRetractAnswer classifies a complete answer to a retract. A retract
// changes state, so like a bid anything that may mean "done" and is not a
// clear 200 is ErrAmbiguous; a retract is safe to send again, which is how
// the caller resolves it.
func decodeRetractAnswer(bidID string, status int, header http.Header, body []byte) error {
	const op = "retract_bid"
	switch {
	case status == http.StatusOK:
		var a wireRetractAnswer
		if err := unmarshal(body, &a); err != nil {
			return marketplace.NewError(marketplace.ErrAmbiguous, op, decodeError(op, body, err).Reason, err)
		}
		if a.Status != wireRetracted || (a.Bid != nil && a.Bid.ID != bidID) {
			return marketplace.NewError(marketplace.ErrAmbiguous, op, ReasonInvalid, fmt.Errorf("HTTP 200 with status %q for bid %q", textsafe.Line(a.Status, maxStatusText), bidID))
		}
		return nil
	case status == http.StatusNotFound:
		return marketplace.NewError(marketplace.ErrBidNotFound, op, codeNotFound, errors.New("HTTP 404"))
	case status == http.StatusConflict:
		// The status line says "decided"; the body only says how.
		var a wireRetractAnswer
		_ = unmarshal(body, &a)
		return marketplace.NewError(marketplace.ErrRetractTooLate, op, codeRetractTooLate, fmt.Errorf("HTTP 409: the bid is %s", textsafe.Line(a.Status, maxStatusText)))
	case status == http.StatusServiceUnavailable:
		if e := errorBody(body); e.Error != "" { // the contract's "before doing anything"
			return marketplace.NewError(marketplace.ErrTransient, op, reasonOr(e.Error, "http_503"), errors.New("HTTP 503"))
		}
		return marketplace.NewError(marketplace.ErrAmbiguous, op, "http_503", errors.New("HTTP 503 without the contract's error body"))
	case status >= 500 && status <= 599:
		return marketplace.NewError(marketplace.ErrAmbiguous, op, reasonOr(errorBody(body).Error, "http_"+strconv.Itoa(status)), fmt.Errorf("HTTP %d", status))
	case status >= 400 && status <= 499:
		return statusError(op, status, header, body)
	}
	return marketplace.NewError(marketplace.ErrAmbiguous, op, ReasonUnexpected, fmt.Errorf("HTTP %d", status))
}
