package httpx

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps a Retry-After: a hostile or broken answer must not
// park a task for a year.
const MaxRetryAfter = 24 * time.Hour

// RetryAfter reads a Retry-After value, delay-seconds or an HTTP date, as a
// delay from now; anything else (missing, negative, in the past, garbage)
// is 0, which callers treat as "use your own backoff".
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}
