package freelancer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/jsonstream"
	"github.com/bidder/bidder/marketplace/internal/statusbatch"
)

// Outcomes from Freelancer's bids endpoint, and retracts through its bid
// action endpoint. docs/freelancer.md, "Outcomes and retracts", says which
// parts of this are seen in public code and which are assumed.
//
//	GET /api/projects/0.1/bids/?bids[]=<id>&...&limit=<n>   statuses
//	PUT /api/projects/0.1/bids/<id>/?action=retract          retract

const (
	// MaxStatusBatch is how many bids one BidStatuses call asks about.
	// Freelancer documents no maximum for bids[]; 50 IDs keep the URL
	// short and the answer (bids carry their proposal text) small.
	MaxStatusBatch = 50
	// maxStatusAnswerBytes caps a status answer: 50 bids with proposals of
	// a few KiB each stay well under it.
	maxStatusAnswerBytes = 2 << 20

	// ReasonRetractRefused is a retract refused for a reason the answer
	// does not name and the follow-up look-up could not explain.
	ReasonRetractRefused = "retract_refused"

	// maxStatusWord bounds a status field read (award_status,
	// frontend_bid_status): the longest known is 11 bytes.
	maxStatusWord = 64
)

var (
	_ marketplace.StatusReader = (*Adapter)(nil)
	_ marketplace.Retracter    = (*Adapter)(nil)
)

// MaxStatusBatch is how many bids one BidStatuses call may carry.
func (a *Adapter) MaxStatusBatch() int { return MaxStatusBatch }

// BidStatuses reads the bids by ID (GET /bids/?bids[]=...) and maps each
// one's award_status and retracted flag onto an Outcome.
func (a *Adapter) BidStatuses(ctx context.Context, bids []marketplace.PlacedBid) ([]marketplace.BidStatus, error) {
	const op = "bid_statuses"
	if err := statusbatch.Check(op, bids, MaxStatusBatch, validBidID); err != nil || len(bids) == 0 {
		return nil, err
	}
	for _, b := range bids {
		if _, err := parseProjectID(op, b.PostingID); err != nil {
			return nil, err
		}
	}
	self, err := a.self(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	for _, b := range bids {
		q.Add("bids[]", b.ID)
	}
	q.Set("limit", strconv.Itoa(len(bids)))
	api := a.api
	api.MaxBytes = maxStatusAnswerBytes
	ans, err := api.Get(ctx, op, a.endpoint(pathBids, q))
	if err != nil {
		return nil, err
	}
	return decodeStatuses(bids, self, ans.Status, ans.Header, ans.Body, a.now())
}

// validBidID accepts the decimal bid IDs PlaceBid and FindBid produce.
func validBidID(id string) bool {
	v, err := strconv.ParseInt(id, 10, 64)
	return err == nil && v > 0 && strconv.FormatInt(v, 10) == id
}

// wireBidStatus is the part of a bid object outcomes come from. The loose
// fields are raw so that one of the wrong type costs only that field.
type wireBidStatus struct {
	ID                     json.Number     `json:"id"`
	BidderID               json.Number     `json:"bidder_id"`
	ProjectID              json.Number     `json:"project_id"`
	Retracted              json.RawMessage `json:"retracted"`
	AwardStatus            json.RawMessage `json:"award_status"`
	AwardStatusChangedTime json.RawMessage `json:"award_status_changed_time"`
	TimeAwarded            json.RawMessage `json:"time_awarded"`
	FrontendBidStatus      json.RawMessage `json:"frontend_bid_status"`
}

// decodeStatuses turns an answer to GET /bids/?bids[]= into one status per
// bid asked about. The list is read one bid at a time and refused past
// MaxStatusBatch entries (see jsonstream). Entries that are not one of ours
// (another ID, project or bidder: a server that ignored the filter) are
// skipped, as is an entry with a field of the wrong type: those bids are
// unknown, the others still count.
func decodeStatuses(bids []marketplace.PlacedBid, self int64, status int, header http.Header, body []byte, now time.Time) ([]marketplace.BidStatus, error) {
	const op = "bid_statuses"
	result, err := successResult(op, status, header, body, now)
	if err != nil {
		return nil, err
	}
	got := statusbatch.NewCollector(bids)
	list := false
	d := jsonstream.New(result)
	_, err = d.Object(maxMembers, func(key string) error {
		if key != "bids" || list {
			return d.Skip()
		}
		null, err := d.Array(func(i int) error {
			if i == MaxStatusBatch {
				return jsonstream.TooMany(MaxStatusBatch, "bids (the most asked for)")
			}
			var w wireBidStatus
			if err := d.Decode(&w); err != nil {
				if errors.As(err, new(*jsonstream.ValueError)) {
					return nil // read whole, just not usable: that bid stays unknown
				}
				return fmt.Errorf("bids[%d]: %w", i, err)
			}
			return addStatus(got, w, self)
		})
		list = !null
		return err
	})
	if err == nil && !list {
		err = errors.New(`result has no "bids" list`)
	}
	if err != nil {
		return nil, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalid, err)
	}
	return got.Result(), nil
}

// addStatus records w if it is a bid asked about, by this account, on the
// project asked about.
func addStatus(got *statusbatch.Collector, w wireBidStatus, self int64) error {
	id, ok := positiveID(w.ID)
	if !ok {
		return nil
	}
	asked, ok := got.Asked(strconv.FormatInt(id, 10))
	if !ok {
		return nil
	}
	if pid, ok := positiveID(w.ProjectID); !ok || strconv.FormatInt(pid, 10) != asked.PostingID {
		return nil
	}
	if w.BidderID != "" {
		if bidder, ok := positiveID(w.BidderID); !ok || bidder != self {
			return nil
		}
	}
	st := bidOutcome(w)
	st.BidID = asked.ID
	if err := got.Add(st); err != nil && !errors.Is(err, statusbatch.ErrRepeated) {
		return err
	}
	return nil // a repeated entry: the first one counts
}

// bidOutcome maps a bid's flags onto an Outcome. award_status values are
// those of Freelancer's own web client (BidAwardStatusApi):
//
//	pending   the client awarded the bid; the freelancer has not accepted
//	awarded   the freelancer accepted the award
//	rejected  the freelancer declined the award
//	revoked   the client took the award back
//	canceled  the client cancelled the accepted award
//
// A bid without award_status has no decision (Freelancer marks no bid as
// lost), so it stays pending until the caller stops asking.
func bidOutcome(w wireBidStatus) marketplace.BidStatus {
	retracted := bytes.Equal(bytes.TrimSpace(w.Retracted), []byte("true"))
	award, awardOK := rawString(w.AwardStatus)
	frontend, _ := rawString(w.FrontendBidStatus)

	var text []string
	if retracted {
		text = append(text, "retracted")
	}
	if award != "" || !awardOK {
		text = append(text, "award_status="+award)
	}
	if frontend != "" {
		text = append(text, "frontend_bid_status="+frontend)
	}
	st := marketplace.BidStatus{Text: strings.Join(text, " ")}

	switch strings.ToLower(award) {
	case "":
		st.Outcome = marketplace.OutcomePending
		if !awardOK {
			st.Outcome = marketplace.OutcomeUnknown
		}
	case "pending", "awarded":
		st.Outcome = marketplace.OutcomeAwarded
	case "rejected":
		// Declined by the freelancer: the bid was withdrawn by its bidder.
		st.Outcome = marketplace.OutcomeRetracted
	case "revoked", "canceled", "cancelled":
		st.Outcome = marketplace.OutcomeRejected
	default:
		st.Outcome = marketplace.OutcomeUnknown
	}
	if retracted {
		st.Outcome = marketplace.OutcomeRetracted
		return st // Freelancer gives no retraction time
	}
	if award != "" {
		st.ChangedAt = unixTime(w.AwardStatusChangedTime)
		if st.ChangedAt.IsZero() {
			st.ChangedAt = unixTime(w.TimeAwarded)
		}
	}
	return st
}

// rawString reads an optional short string field: absent or null is ("",
// true), a string is (it, true), anything else, or a string longer than any
// status word, is ("?", false).
func rawString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", true
	}
	if len(raw) > maxStatusWord {
		return "?", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "?", false
	}
	return strings.TrimSpace(s), true
}

// RetractBid sends PUT /bids/<id>/?action=retract once, as the official
// Python SDK does. Freelancer documents no error codes for a refused
// retract, so after a refusal the adapter reads the bid: retracted already
// is success, awarded or decided is ErrRetractTooLate.
func (a *Adapter) RetractBid(ctx context.Context, postingID string, bid marketplace.PlacedBid) error {
	const op = "retract_bid"
	if _, err := parseProjectID(op, postingID); err != nil {
		return err
	}
	if !validBidID(bid.ID) {
		return marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, fmt.Errorf("bid id %q is not a Freelancer bid ID", textsafe.Line(bid.ID, 64)))
	}
	if bid.PostingID != "" && bid.PostingID != postingID {
		return marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, fmt.Errorf("bid %s is on project %q, not %q", bid.ID, textsafe.Line(bid.PostingID, 64), postingID))
	}
	target := a.endpoint(pathBids+bid.ID+"/", url.Values{"action": {"retract"}})
	ans, err := a.api.SendOnce(ctx, op, http.MethodPut, target, "application/x-www-form-urlencoded", nil, nil)
	if err != nil {
		return err
	}
	err = decodeRetractAnswer(ans.Status, ans.Header, ans.Body, a.now())
	var me *marketplace.Error
	if !errors.As(err, &me) || me.Class != marketplace.ErrPermanent || me.Reason == ReasonUnauthorized || me.Reason == ReasonInvalidInput {
		return err
	}
	// A refusal that does not say why: the bid's state does.
	st, lerr := a.BidStatuses(ctx, []marketplace.PlacedBid{{ID: bid.ID, PostingID: postingID}})
	if lerr != nil || len(st) != 1 {
		return err
	}
	switch st[0].Outcome {
	case marketplace.OutcomeRetracted:
		return nil
	case marketplace.OutcomeAwarded, marketplace.OutcomeRejected:
		return marketplace.NewError(marketplace.ErrRetractTooLate, op, ReasonRetractTooLate, fmt.Errorf("%w; the bid is %s (%s)", me.Err, st[0].Outcome, st[0].Text))
	case marketplace.OutcomeUnknown:
		if st[0].Text == "" { // not in the answer
			return marketplace.NewError(marketplace.ErrBidNotFound, op, ReasonNotFound, me.Err)
		}
	}
	return err
}

// ReasonRetractTooLate is the reason of an ErrRetractTooLate.
const ReasonRetractTooLate = "retract_too_late"

// decodeRetractAnswer classifies a complete answer to the retract PUT. A
// retract changes state: anything that may mean "done" and is not a clear
// success is ErrAmbiguous, which the caller resolves by retracting again
// (retracting a retracted bid is success).
func decodeRetractAnswer(status int, header http.Header, body []byte, now time.Time) error {
	const op = "retract_bid"
	switch {
	case status >= 200 && status <= 299:
		env, perr := parseEnvelope(body)
		switch {
		case perr != nil:
			return marketplace.NewError(marketplace.ErrAmbiguous, op, ReasonMalformed, fmt.Errorf("HTTP %d with a body that is not a JSON object: %w", status, perr))
		case env.Status != "success":
			return marketplace.NewError(marketplace.ErrAmbiguous, op, ReasonInvalid, fmt.Errorf("HTTP %d with envelope status %q %s", status, textsafe.Line(env.Status, 32), textsafe.Line(env.Code, maxCodeBytes)))
		}
		return nil
	case status >= 400 && status <= 499:
		err := answerError(op, status, header, body, false, now)
		env, _ := parseEnvelope(body)
		switch {
		case codeKey(env.Code) == "BID_NOT_FOUND" || err.Reason == ReasonNotFound:
			err.Class, err.Reason = marketplace.ErrBidNotFound, ReasonNotFound
		case err.Class == marketplace.ErrPermanent && (err.Reason == ReasonBadRequest || err.Reason == ReasonUnexpected):
			err.Reason = ReasonRetractRefused
		}
		return err
	case status >= 500 && status <= 599:
		env, _ := parseEnvelope(body)
		return marketplace.NewError(marketplace.ErrAmbiguous, op, "http_"+strconv.Itoa(status), fmt.Errorf("HTTP %d %s", status, textsafe.Line(env.Code, maxCodeBytes)))
	}
	return marketplace.NewError(marketplace.ErrAmbiguous, op, ReasonUnexpected, fmt.Errorf("HTTP %d", status))
}
