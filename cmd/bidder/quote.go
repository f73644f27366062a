package main

import "github.com/bidder/bidder/internal/textsafe"

// Operator commands print what Redis holds and what marketplaces said:
// fields are printed quoted (%q), and error texts through escaped, so that
// nothing in them can act on the terminal.

// escaped is err with every control character of its text escaped;
// errors.Is and errors.As still see err.
type escaped struct{ err error }

func (e escaped) Error() string { return textsafe.Escape(e.err.Error()) }
func (e escaped) Unwrap() error { return e.err }
