package scanner

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Summary is what one scan did.
type Summary struct {
	Marketplace    string
	Result         string // one of the Result* constants
	Pages          int    // pages fetched and fully processed
	Seen           int    // postings on those pages
	Enqueued       int    // bid tasks enqueued
	Duplicates     int    // bid tasks that already existed (ErrTaskIDConflict)
	AlreadyDecided int    // postings the ledger had a final decision for
	Invalid        int    // postings with an ID that cannot form a task
	CursorBefore   string
	CursorAfter    string
	CursorReset    bool // the stored cursor was refused and the scan restarted from ""
	Duration       time.Duration
}

// String is a one-line report for operators.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "marketplace=%s result=%s pages=%d seen=%d enqueued=%d duplicates=%d already_decided=%d invalid=%d",
		s.Marketplace, s.Result, s.Pages, s.Seen, s.Enqueued, s.Duplicates, s.AlreadyDecided, s.Invalid)
	fmt.Fprintf(&b, " cursor=%s->%s", quoteCursor(s.CursorBefore), quoteCursor(s.CursorAfter))
	if s.CursorReset {
		b.WriteString(" cursor_reset=true")
	}
	fmt.Fprintf(&b, " duration=%s", s.Duration.Round(time.Millisecond))
	return b.String()
}

func quoteCursor(c string) string {
	if len(c) > 64 {
		c = c[:64] + "..."
	}
	return fmt.Sprintf("%q", c)
}

// ScanOnce runs one scan of marketplaceID now, outside any schedule, for the
// operator command "bidder scan-once". It takes the same lock as scheduled
// scans, so it returns ErrBusy instead of racing one. The Summary is filled
// in as far as the scan got, also when it returns an error.
func ScanOnce(ctx context.Context, h *ScanHandler, marketplaceID string) (Summary, error) {
	return h.Scan(ctx, marketplaceID)
}
