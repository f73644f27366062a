package httpx

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
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
