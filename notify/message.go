package notify

import (
	"strings"
	"time"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/ledger"
)

// Text is an event's human message: one short line. Every field came from
// outside (a marketplace's posting ID, a rule's reason, an error text):
// each is cleaned to one safe line and cut, so a hostile value can neither
// forge lines in a chat nor fill it.
func Text(e ledger.Event) string {
	f := func(s string, max int) string { return textsafe.Line(s, max) }
	where := f(e.Marketplace, 64) + " " + f(e.PostingID, 128)
	amount := strings.TrimSpace(f(e.Amount, 32) + " " + f(e.Currency, 8))
	var b strings.Builder
	switch e.Kind {
	case ledger.EventBidPlaced:
		b.WriteString("bid placed on " + where)
		if amount != "" {
			b.WriteString(": " + amount)
		}
		if e.BidID != "" {
			b.WriteString(" (bid " + f(e.BidID, 64) + ")")
		}
	case ledger.EventReviewNeeded:
		b.WriteString("review needed on " + where)
		if amount != "" {
			b.WriteString(": " + amount)
		}
		if e.Reason != "" {
			b.WriteString(" (" + f(e.Reason, 200) + ")")
		}
		if e.UntilMs > 0 {
			b.WriteString(", decide by " + time.UnixMilli(e.UntilMs).UTC().Format("2006-01-02 15:04 UTC"))
		}
	case ledger.EventPostingParked:
		b.WriteString("posting parked on " + where)
		if r := strings.TrimSpace(f(e.Rule, 64) + ": " + f(e.Reason, 200)); r != ":" {
			b.WriteString(": " + strings.Trim(r, ": "))
		}
		if e.HeldIntent {
			b.WriteString(" (a bid may exist: check before resuming)")
		}
	case ledger.EventBudgetSpent:
		b.WriteString("bid budget of " + f(e.Marketplace, 64) + " spent")
		if e.UntilMs > 0 {
			b.WriteString("; bidding resumes at " + time.UnixMilli(e.UntilMs).UTC().Format("2006-01-02 15:04 UTC"))
		}
	case EventRedisUnreachable:
		b.WriteString("bidder " + f(e.Instance, 128) + " cannot reach Redis since " + time.UnixMilli(e.AtMs).UTC().Format("2006-01-02 15:04:05 UTC"))
		if e.Reason != "" {
			b.WriteString(" (" + f(e.Reason, 100) + ")")
		}
		b.WriteString(": its bidding is paused")
	case ledger.EventMarketplaceUnauthorized:
		b.WriteString(f(e.Marketplace, 64) + " refuses the account's token; its postings wait")
		if e.Reason != "" {
			b.WriteString(" (" + f(e.Reason, 200) + ")")
		}
	default:
		b.WriteString(f(e.Kind, 64) + " on " + where)
	}
	return textsafe.Line(b.String(), 600)
}
