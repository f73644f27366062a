// Package statusbatch is what the adapters' marketplace.StatusReader
// implementations share: checking a batch before it is sent, matching the
// entries of an answer to the bids asked about, and reading the answer's
// JSON one element at a time under a limit, so that what an answer costs is
// bounded by what the adapter accepts rather than by what the server sent.
package statusbatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/httpx"
)

var (
	// ErrTooMany is wrapped by the error for a list or object longer than
	// the caller accepts.
	ErrTooMany = errors.New("too many elements")
	// ErrShape is wrapped by the error for a JSON value of the wrong kind.
	ErrShape = errors.New("unexpected JSON value")
	// ErrRepeated is wrapped by Collector.Add for a bid reported twice.
	ErrRepeated = errors.New("bid reported twice")
)

// Check refuses, as ErrPermanent with httpx.ReasonInvalidInput, a batch an
// adapter must not send: more than max bids, or a bid whose ID validID
// refuses (empty, or unsendable) or that repeats.
func Check(op string, bids []marketplace.PlacedBid, max int, validID func(string) bool) error {
	invalid := func(format string, args ...any) error {
		return marketplace.NewError(marketplace.ErrPermanent, op, httpx.ReasonInvalidInput, fmt.Errorf(format, args...))
	}
	if len(bids) > max {
		return invalid("%d bids in one batch, at most %d", len(bids), max)
	}
	seen := make(map[string]bool, len(bids))
	for i, b := range bids {
		if b.ID == "" || !validID(b.ID) {
			return invalid("bids[%d]: bid id %q cannot be asked about", i, clip(b.ID))
		}
		if seen[b.ID] {
			return invalid("bids[%d]: bid id %q asked twice", i, clip(b.ID))
		}
		seen[b.ID] = true
	}
	return nil
}

// MaxText caps BidStatus.Text.
const MaxText = 64

// Collector matches the entries of an answer to the bids asked about.
type Collector struct {
	asked []marketplace.PlacedBid
	index map[string]int
	got   []*marketplace.BidStatus
}

// NewCollector expects one entry for each of bids (already Checked).
func NewCollector(bids []marketplace.PlacedBid) *Collector {
	c := &Collector{asked: bids, index: make(map[string]int, len(bids)), got: make([]*marketplace.BidStatus, len(bids))}
	for i, b := range bids {
		c.index[b.ID] = i
	}
	return c
}

// Asked returns the bid with this ID, if it was asked about.
func (c *Collector) Asked(id string) (marketplace.PlacedBid, bool) {
	i, ok := c.index[id]
	if !ok {
		return marketplace.PlacedBid{}, false
	}
	return c.asked[i], true
}

// Add records st for the bid it names, which must have been asked about;
// a bid reported twice is ErrRepeated.
func (c *Collector) Add(st marketplace.BidStatus) error {
	i, ok := c.index[st.BidID]
	if !ok {
		return fmt.Errorf("bid %q was not asked about", clip(st.BidID))
	}
	if c.got[i] != nil {
		return fmt.Errorf("%w: %q", ErrRepeated, clip(st.BidID))
	}
	st.PostingID = c.asked[i].PostingID
	st.Text = Printable(st.Text, MaxText)
	c.got[i] = &st
	return nil
}

// Result is one status per bid asked about, in the order asked; a bid
// without an entry is marketplace.OutcomeUnknown with no text.
func (c *Collector) Result() []marketplace.BidStatus {
	out := make([]marketplace.BidStatus, len(c.asked))
	for i, b := range c.asked {
		if c.got[i] != nil {
			out[i] = *c.got[i]
			continue
		}
		out[i] = marketplace.BidStatus{BidID: b.ID, PostingID: b.PostingID, Outcome: marketplace.OutcomeUnknown}
	}
	return out
}

// Object reads a JSON object from dec, calling fn with each key; fn must
// consume the member's value (Skip, Decode, List, Object) or fail. More than
// max members is ErrTooMany: each key is a string to allocate. A JSON null
// reads as an empty object.
func Object(dec *json.Decoder, max int, fn func(key string) error) error {
	if null, err := open(dec, '{'); null || err != nil {
		return err
	}
	for n := 0; dec.More(); n++ {
		if n == max {
			return fmt.Errorf("%w: more than %d object members", ErrTooMany, max)
		}
		t, err := dec.Token()
		if err != nil {
			return eof(err)
		}
		key, ok := t.(string)
		if !ok {
			return fmt.Errorf("%w: object key %v", ErrShape, t)
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	return closeValue(dec)
}

// List reads a JSON array from dec, calling fn for each element; fn must
// consume it or fail. More than max elements is ErrTooMany, found before
// the one too many is decoded. A JSON null reads as an empty list.
func List(dec *json.Decoder, max int, fn func() error) error {
	if null, err := open(dec, '['); null || err != nil {
		return err
	}
	for n := 0; dec.More(); n++ {
		if n == max {
			return fmt.Errorf("%w: more than %d list elements", ErrTooMany, max)
		}
		if err := fn(); err != nil {
			return err
		}
	}
	return closeValue(dec)
}

// skipped takes any value without looking at it: json.Decoder hands an
// Unmarshaler the value's bytes in its own buffer, so nothing is built.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// Skip consumes the next value.
func Skip(dec *json.Decoder) error { return eof(dec.Decode(&skipped{})) }

// End checks that nothing but white space follows the document.
func End(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: data after the top-level value", ErrShape)
	}
	return nil
}

func open(dec *json.Decoder, delim json.Delim) (null bool, err error) {
	t, err := dec.Token()
	switch {
	case err != nil:
		return false, eof(err)
	case t == nil:
		return true, nil
	case t == delim:
		return false, nil
	}
	return false, fmt.Errorf("%w: want %q or null, got %T", ErrShape, delim, t)
}

func closeValue(dec *json.Decoder) error {
	_, err := dec.Token()
	return eof(err)
}

// eof turns the end of input inside a value into the error it is.
func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// clip keeps outside text in errors short and printable.
func clip(s string) string { return Printable(s, 64) }

// Printable cuts s to n bytes of printable ASCII ('?' for the rest), with
// "..." when it was longer: for text from a server that ends up in errors,
// logs or BidStatus.Text.
func Printable(s string, n int) string {
	b := make([]byte, 0, min(len(s), n)+3)
	for i := 0; i < len(s) && i < n; i++ {
		c := s[i]
		if c < ' ' || c > '~' {
			c = '?'
		}
		b = append(b, c)
	}
	if len(s) > n {
		b = append(b, "..."...)
	}
	return string(b)
}
