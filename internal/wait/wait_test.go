package wait

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	Until(t, time.Minute, "the third poll", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}
}

// recorder is a testing.TB whose Fatalf ends only its own goroutine, so
// the failure can be inspected.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	panic(r)
}

func TestUntilFailsNamingWhatDidNotHappen(t *testing.T) {
	r := &recorder{TB: t}
	polls := 0
	func() {
		defer func() {
			if p := recover(); p != nil && p != r {
				panic(p)
			}
		}()
		Until(r, 30*time.Millisecond, "never held", func() bool { polls++; return false })
	}()
	if !strings.Contains(r.msg, "never held") || !strings.Contains(r.msg, "30ms") {
		t.Fatalf("failure %q, want what and the time allowed", r.msg)
	}
	if polls < 2 {
		t.Errorf("%d polls in 30 ms", polls)
	}
}
