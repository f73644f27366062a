// Package wait is the tests' one poll-until-deadline: for progress no
// channel can signal (another process, Redis state, a background timer).
// Test code only; it may import nothing of bidder's.
package wait

import (
	"testing"
	"time"
)

// Until polls cond until it holds, failing t with what if within passes
// first. The first polls come quickly (2 ms) and the interval doubles to
// 50 ms, so a condition that holds soon is seen soon and an expensive one
// (an HTTP request, a subprocess) is not hammered.
func Until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	pause := 2 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}
