// Package statusbatch is what the adapters' marketplace.StatusReader
// implementations share: checking a batch before it is sent, and matching
// the entries of an answer (decoded with jsonstream, one at a time) to the
// bids asked about.
package statusbatch

import (
	"errors"
	"fmt"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/internal/httpx"
)

// ErrRepeated is wrapped by Collector.Add for a bid reported twice.
var ErrRepeated = errors.New("bid reported twice")

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

// MaxText caps BidStatus.Text, in bytes, before the "..." of a cut.
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
	st.Text = textsafe.Line(st.Text, MaxText)
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

// clip keeps outside text in errors short and safe to print.
func clip(s string) string { return textsafe.Line(s, MaxText) }
