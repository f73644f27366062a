// Package httpxtest holds test scaffolding the adapters' fuzz tests share:
// the check that whatever a broken or hostile server sends, the decoders
// answer with an error the worker can act on.
package httpxtest

import (
	"errors"
	"testing"

	"github.com/bidder/bidder/marketplace"
)

var classes = []error{
	marketplace.ErrTransient, marketplace.ErrRateLimited, marketplace.ErrPermanent,
	marketplace.ErrPostingClosed, marketplace.ErrAlreadyBid, marketplace.ErrAmbiguous,
	marketplace.ErrBidNotFound, marketplace.ErrRetractTooLate,
}

// CheckClassified fails unless err is nil or a *marketplace.Error of exactly
// one known class whose text can be built. It returns that error, or nil.
func CheckClassified(t testing.TB, err error) *marketplace.Error {
	t.Helper()
	if err == nil {
		return nil
	}
	var me *marketplace.Error
	if !errors.As(err, &me) {
		t.Fatalf("unclassified error %T: %v", err, err)
	}
	n := 0
	for _, c := range classes {
		if errors.Is(err, c) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %v matches %d classes", err, n)
	}
	_ = err.Error() // must not panic either
	return me
}
