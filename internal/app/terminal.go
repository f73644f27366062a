package app

import (
	"io"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal, where a person reads the log
// (log.format auto logs for people there, JSON for machines elsewhere).
// golang.org/x/term: the Go team's, every platform, and its one dependency
// (x/sys) was already in the module graph.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}
