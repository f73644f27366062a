package httpx

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadCapped(t *testing.T) {
	b, err := readCapped(strings.NewReader("12345"), 5)
	if err != nil || string(b) != "12345" {
		t.Fatalf("at the cap: %q, %v", b, err)
	}
	if b, err := readCapped(strings.NewReader("123456"), 5); !errors.Is(err, errTooLarge) || b != nil {
		t.Fatalf("over the cap: %q, %v; want errTooLarge and no bytes", b, err)
	}
	if got := readReason(errTooLarge); got != ReasonTooLarge {
		t.Fatalf("readReason(errTooLarge) = %q", got)
	}
	broken := errors.New("connection reset")
	if _, err := readCapped(iotest.ErrReader(broken), 5); !errors.Is(err, broken) {
		t.Fatalf("failed read: %v", err)
	}
	if got := readReason(broken); got != ReasonNoAnswer {
		t.Fatalf("readReason(read error) = %q", got)
	}
}

// The adapters export these values as their own Reason* constants.
func TestReasonValues(t *testing.T) {
	for got, want := range map[string]string{
		ReasonTooLarge:     "response_too_large",
		ReasonNotSent:      "not_sent",
		ReasonNoAnswer:     "no_answer",
		ReasonInvalidInput: "invalid_request",
	} {
		if got != want {
			t.Errorf("reason %q, want %q", got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "  ": 0, "0": 0, "-3": 0, "soon": 0, "12": 12 * time.Second, " 7 ": 7 * time.Second,
		"99999999999":                   MaxRetryAfter,
		"Fri, 27 Nov 2026 10:00:30 GMT": 30 * time.Second,
		"Fri, 27 Nov 2026 09:59:00 GMT": 0,
		"Sun, 27 Nov 2033 10:00:00 GMT": MaxRetryAfter,
	} {
		if got := RetryAfter(v, now); got != want {
			t.Errorf("RetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}
