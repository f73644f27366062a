package freelancer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// The scan cursor.
//
// GET /projects/active/ pages by offset and filters by from_time; the public
// docs say neither in what order active projects come nor how from_time
// compares, and offsets shift whenever a project closes or is posted. So the
// cursor trusts as little of it as it can:
//
//   - A sweep pages one window (from_time = From, or all active projects
//     when From is 0) by offset. Each request starts a few items early, at
//     Offset-len(Seen), and must find at least one of Seen — the last IDs of
//     the previous answer — in its answer. If it does, every project not yet
//     seen is at or after the answer's start, whatever was inserted or closed
//     meanwhile, as long as the server keeps surviving projects in the same
//     relative order. If none is found, projects may have slid below the
//     offset: the sweep restarts at offset 0. Repeats are harmless (the
//     scanner deduplicates by task ID); a skip would be a lost posting.
//   - A short answer ends the sweep. The next window starts Lookback before
//     the newest time_submitted seen (High), so a project the search index
//     shows up to Lookback late is still caught, and the cursor turns into a
//     probe.
//   - A probe asks only for projects from High on. If that answer is short
//     and holds nothing newer than High, the scan is caught up and the probe
//     cursor comes back unchanged (one request per scan while nothing
//     happens). Otherwise a new sweep of the window begins.
//
// The cursor is base64url JSON, so it is printable and opaque.

const (
	cursorVersion = 1
	// maxOverlap bounds Seen: enough to survive a few closures between two
	// requests, small enough to keep cursors short and pages useful.
	maxOverlap = 10
	maxOffset  = 1 << 20
	maxCursor  = 2048
)

type cursorState struct {
	V      int     `json:"v"`
	From   int64   `json:"from,omitempty"`   // from_time of the window, unix seconds; 0 = none
	Offset int     `json:"offset,omitempty"` // items of the window consumed so far
	Seen   []int64 `json:"seen,omitempty"`   // IDs just before Offset, oldest request order
	High   int64   `json:"high,omitempty"`   // newest time_submitted seen, unix seconds
	Probe  bool    `json:"probe,omitempty"`  // the last sweep ended; probe for news
}

var errBadCursor = errors.New("cursor was not issued by this adapter")

func (c cursorState) encode() string {
	if c.From == 0 && c.Offset == 0 && len(c.Seen) == 0 && c.High == 0 && !c.Probe {
		// The start state is "" so that an empty marketplace answers the
		// scanner's "" with "" ("nothing from the start").
		return ""
	}
	c.V = cursorVersion
	b, _ := json.Marshal(c) // plain ints: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c cursorState) equal(o cursorState) bool {
	if c.From != o.From || c.Offset != o.Offset || c.High != o.High || c.Probe != o.Probe || len(c.Seen) != len(o.Seen) {
		return false
	}
	for i := range c.Seen {
		if c.Seen[i] != o.Seen[i] {
			return false
		}
	}
	return true
}

func decodeCursor(s string) (cursorState, error) {
	if s == "" {
		return cursorState{}, nil
	}
	if len(s) > maxCursor {
		return cursorState{}, fmt.Errorf("%w: %d bytes", errBadCursor, len(s))
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursorState{}, fmt.Errorf("%w: not base64url", errBadCursor)
	}
	var c cursorState
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return cursorState{}, fmt.Errorf("%w: not a cursor object", errBadCursor)
	}
	switch {
	case c.V != cursorVersion:
		return cursorState{}, fmt.Errorf("%w: version %d", errBadCursor, c.V)
	case c.From < 0 || c.High < 0 || c.Offset < 0 || c.Offset > maxOffset:
		return cursorState{}, fmt.Errorf("%w: field out of range", errBadCursor)
	case c.Probe && (c.Offset != 0 || len(c.Seen) != 0):
		return cursorState{}, fmt.Errorf("%w: probe with an offset", errBadCursor)
	case len(c.Seen) > maxOverlap || len(c.Seen) > c.Offset:
		return cursorState{}, fmt.Errorf("%w: %d seen IDs at offset %d", errBadCursor, len(c.Seen), c.Offset)
	}
	for _, id := range c.Seen {
		if id <= 0 {
			return cursorState{}, fmt.Errorf("%w: seen ID %d", errBadCursor, id)
		}
	}
	return c, nil
}
