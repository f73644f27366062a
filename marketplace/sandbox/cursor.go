package sandbox

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// A cursor is the sequence number of the last posting a client has seen.
// Sequence numbers are assigned under the same lock that appends the posting,
// so "everything after n" never skips or repeats a posting however publishing
// and paging interleave. It is base64 so clients treat it as opaque.

const cursorPrefix = "s1."

func encodeCursor(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatUint(seq, 10)))
}

var errBadCursor = errors.New("cursor is not one this server issued")

func decodeCursor(s string) (uint64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, errBadCursor
	}
	num, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return 0, errBadCursor
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	// Only the canonical spelling is accepted, so one position has one cursor.
	if err != nil || encodeCursor(seq) != s {
		return 0, errBadCursor
	}
	return seq, nil
}
