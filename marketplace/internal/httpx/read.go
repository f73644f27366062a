package httpx

import (
	"errors"
	"io"
)

var errTooLarge = errors.New("answer body over the size cap")

// readCapped reads at most limit bytes; a longer body is an error rather than
// a truncated one that happens to decode.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

// readReason is the reason for a failed read of an answer's body.
func readReason(err error) string {
	if errors.Is(err, errTooLarge) {
		return ReasonTooLarge
	}
	return ReasonNoAnswer
}
