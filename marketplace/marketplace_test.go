package marketplace_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
)

func TestErrorClasses(t *testing.T) {
	cause := errors.New("connection reset")
	err := fmt.Errorf("placing: %w", &marketplace.Error{Class: marketplace.ErrRateLimited, Op: "place_bid", RetryAfter: 3 * time.Second, Err: cause})
	if !errors.Is(err, marketplace.ErrRateLimited) || errors.Is(err, marketplace.ErrTransient) {
		t.Fatalf("class matching wrong for %v", err)
	}
	if !errors.Is(err, cause) {
		t.Fatal("cause not unwrapped")
	}
	if d, ok := marketplace.RetryAfter(err); !ok || d != 3*time.Second {
		t.Fatalf("RetryAfter = %s, %v", d, ok)
	}
	bid := marketplace.PlacedBid{ID: "b-1"}
	already := &marketplace.Error{Class: marketplace.ErrAlreadyBid, Op: "place_bid", Existing: &bid}
	if got, ok := marketplace.ExistingBid(already); !ok || got.ID != "b-1" {
		t.Fatalf("ExistingBid = %+v, %v", got, ok)
	}
	if _, ok := marketplace.ExistingBid(err); ok {
		t.Fatal("ExistingBid on a rate-limit error")
	}
	if e := marketplace.NewError(nil, "scan", "x", nil); !errors.Is(e, marketplace.ErrPermanent) {
		t.Fatal("a nil class must never look retryable")
	}
	if r := marketplace.Reason(marketplace.NewError(marketplace.ErrPermanent, "place_bid", "invalid_bid", nil)); r != "invalid_bid" {
		t.Fatalf("Reason = %q", r)
	}
}

func TestRegistry(t *testing.T) {
	r := marketplace.NewRegistry()
	f := func(marketplace.Config) (marketplace.Adapter, error) { return nil, errors.New("boom") }
	if err := r.Register("b", f); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("a", f); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("a", f); err == nil {
		t.Fatal("duplicate registration accepted")
	}
	_, err := r.New("nope", marketplace.Config{ID: "x"})
	if !errors.Is(err, marketplace.ErrUnknownAdapter) || !strings.Contains(err.Error(), "known: a, b") {
		t.Fatalf("unknown adapter error %v must list the known ones", err)
	}
	if _, err := r.New("a", marketplace.Config{ID: "x"}); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("factory error not wrapped with the marketplace: %v", err)
	}
}

func TestIdempotencyKeyIsDeterministicAndSeparated(t *testing.T) {
	k := marketplace.IdempotencyKey("upwork", "job_1", "acct")
	if k != marketplace.IdempotencyKey("upwork", "job_1", "acct") {
		t.Fatal("not deterministic")
	}
	if len(k) > 128 || !strings.HasPrefix(k, "bid-") {
		t.Fatalf("key %q breaks the 1..128 printable bytes contract", k)
	}
	for _, other := range []string{
		marketplace.IdempotencyKey("upwork", "job_1", "acct2"),
		marketplace.IdempotencyKey("upwork", "job_2", "acct"),
		marketplace.IdempotencyKey("upwor", "kjob_1", "acct"),
	} {
		if other == k {
			t.Fatal("different inputs share a key")
		}
	}
}
