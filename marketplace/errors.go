package marketplace

import (
	"errors"
	"fmt"
	"time"

	"github.com/bidder/bidder/internal/textsafe"
)

// The error classes. Every adapter error is an *Error whose Class is one of
// these, so callers decide with errors.Is and never parse messages.
var (
	// ErrTransient: nothing happened on the marketplace; retry with backoff.
	ErrTransient = errors.New("transient marketplace failure")
	// ErrRateLimited: slow down; RetryAfter(err) says for how long.
	ErrRateLimited = errors.New("rate limited by marketplace")
	// ErrPermanent: retrying will not help (bad request, auth, not found).
	ErrPermanent = errors.New("permanent marketplace failure")
	// ErrPostingClosed: the posting no longer takes bids.
	ErrPostingClosed = errors.New("posting closed")
	// ErrAlreadyBid: this account already has a bid on the posting;
	// ExistingBid(err) returns it when the marketplace said which.
	ErrAlreadyBid = errors.New("already bid on posting")
	// ErrAmbiguous: the request may have taken effect (timeout or 5xx after a
	// bid was sent). Reconcile with FindBid before any retry.
	ErrAmbiguous = errors.New("marketplace outcome unknown")
)

// Error is the error every adapter returns.
type Error struct {
	Class      error         // one of the Err* classes above
	Op         string        // "scan", "place_bid", "find_bid", ...
	Reason     string        // the marketplace's short code, e.g. "invalid_bid"
	RetryAfter time.Duration // with ErrRateLimited, when known
	Existing   *PlacedBid    // with ErrAlreadyBid, when known
	Err        error         // the underlying cause, if any
}

func (e *Error) Error() string {
	msg := e.Op + ": " + e.Class.Error()
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	if e.Err != nil {
		// Causes quote what servers sent; adapters clean what they know
		// to be outside text, and this catches what they do not.
		msg += ": " + textsafe.Line(e.Err.Error(), 0)
	}
	return msg
}

// Is makes errors.Is(err, ErrTransient) and friends work.
func (e *Error) Is(target error) bool { return target == e.Class }

func (e *Error) Unwrap() error { return e.Err }

// NewError builds an *Error; a nil class is treated as ErrPermanent so a
// careless adapter can never produce an error that looks retryable.
func NewError(class error, op, reason string, cause error) *Error {
	if class == nil {
		class = ErrPermanent
	}
	return &Error{Class: class, Op: op, Reason: reason, Err: cause}
}

// RetryAfter returns the delay a rate-limited answer asked for.
func RetryAfter(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.Class == ErrRateLimited && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// ExistingBid returns the bid an ErrAlreadyBid answer carried.
func ExistingBid(err error) (PlacedBid, bool) {
	var e *Error
	if errors.As(err, &e) && e.Existing != nil {
		return *e.Existing, true
	}
	return PlacedBid{}, false
}

// Reason returns the marketplace's short reason code, or "".
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
