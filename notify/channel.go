package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bidder/bidder/ledger"
)

// Channel is somewhere notifications go.
type Channel interface {
	// Name is the configured name: the task ID, the delivery key and the
	// metrics' channel label use it. Never a URL or a credential.
	Name() string
	// Send delivers m once. Its errors are *SendError.
	Send(ctx context.Context, m Message) error
	// Idempotent reports whether sending the same event twice reaches the
	// reader once (the receiver deduplicates by event ID).
	Idempotent() bool
}

// Message is one event with its human text.
type Message struct {
	Event ledger.Event
	Text  string
}

// Error classes: what a failed send means for the next attempt. Every
// *SendError matches exactly one with errors.Is.
var (
	// ErrPermanent: the channel refused the message (4xx other than 408
	// and 429, a redirect, a bad answer to a request it understood):
	// sending again would be refused again.
	ErrPermanent = errors.New("notify: refused")
	// ErrRetryable: the message was not delivered (5xx, 408, 429,
	// no connection): sending again is safe.
	ErrRetryable = errors.New("notify: not delivered")
	// ErrAmbiguous: the request may have reached the channel (the
	// connection failed or timed out after the request was written).
	ErrAmbiguous = errors.New("notify: delivery unknown")
)

// SendError is a failed send. Its text names the channel and what went
// wrong, never the URL or a credential: URLs carry Slack's and Telegram's
// secrets, so *url.Error is unwrapped before its text is used.
type SendError struct {
	Channel    string
	Class      error // ErrPermanent, ErrRetryable or ErrAmbiguous
	Status     int   // HTTP status, 0 without an answer
	RetryAfter time.Duration
	Reason     string // short, safe to log
	Err        error  // the cause, without its URL (may be nil)
}

func (e *SendError) Error() string {
	s := fmt.Sprintf("notify: channel %s: %s: %s", e.Channel, strings.TrimPrefix(e.Class.Error(), "notify: "), e.Reason)
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Unwrap gives the class and the cause.
func (e *SendError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Class}
	}
	return []error{e.Class, e.Err}
}

// maxAnswer bounds what is read of any answer: the channels answer with a
// few bytes; a hostile or broken one must not fill memory.
const maxAnswer = 64 << 10

// DefaultTimeout bounds one send, connection to last byte of the answer.
const DefaultTimeout = 10 * time.Second

// maxRetryAfter caps a Retry-After: a channel asking for a day would
// otherwise park the task beyond any useful notification.
const maxRetryAfter = time.Hour

// NewHTTPClient is the bounded client the channels use: a whole-request
// timeout and no redirects (a redirect would send the body, signed, to
// wherever the answer says).
func NewHTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		tr = tr.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment} // someone replaced the default
	}
	tr.MaxResponseHeaderBytes = 16 << 10
	tr.ResponseHeaderTimeout = timeout
	return &http.Client{
		Timeout:       timeout,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// answer is an HTTP exchange's outcome: the status, headers and the first
// maxAnswer bytes of the body.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to u and reads a bounded answer. A failure without an
// answer is a *SendError: retryable when no byte of the request was
// written (the server cannot have acted), ambiguous otherwise.
func post(ctx context.Context, c *http.Client, channel, u string, header http.Header, body []byte) (answer, error) {
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		// Only a malformed URL gets here; its text would quote the URL.
		return answer{}, &SendError{Channel: channel, Class: ErrPermanent, Reason: "bad URL"}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, transportError(channel, err, wrote.Load())
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	// Drain a little more so the connection can be reused; never all of
	// a hostile answer.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	if rerr != nil && resp.StatusCode/100 != 2 {
		// A failure status is a failure whatever the rest of the body.
		rerr = nil
	}
	if rerr != nil {
		// The status said success but the answer broke off: the
		// channel acted, or may have. Callers that need the body decide.
		return a, &SendError{Channel: channel, Class: ErrAmbiguous, Status: resp.StatusCode, Reason: "answer cut off", Err: stripURL(rerr)}
	}
	return a, nil
}

// transportError classifies a failure without an answer.
func transportError(channel string, err error, wrote bool) *SendError {
	cause := stripURL(err)
	e := &SendError{Channel: channel, Class: ErrRetryable, Err: cause}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		e.Reason = "canceled"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		e.Reason = "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Reason = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		e.Reason = "connection reset"
	default:
		e.Reason = "no answer: " + cause.Error()
	}
	if wrote {
		e.Class = ErrAmbiguous
	}
	return e
}

// stripURL drops the *url.Error layers, whose text quotes the URL (the
// Slack webhook path and the Telegram token are in it). What is left names
// at most a host and port.
func stripURL(err error) error {
	for {
		var ue *url.Error
		if !errors.As(err, &ue) {
			return err
		}
		err = ue.Err
	}
}

// statusError classifies a non-2xx answer.
func statusError(channel string, a answer, reason string) *SendError {
	e := &SendError{Channel: channel, Status: a.status, Reason: reason}
	if e.Reason == "" {
		e.Reason = "HTTP " + strconv.Itoa(a.status)
	}
	switch {
	case a.status == http.StatusTooManyRequests || a.status == http.StatusRequestTimeout || a.status >= 500:
		e.Class = ErrRetryable
		e.RetryAfter = retryAfter(a.header.Get("Retry-After"), time.Now())
	default:
		e.Class = ErrPermanent
	}
	return e
}

// retryAfter reads a Retry-After header: seconds or an HTTP date; 0 when
// absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return min(time.Duration(min(n, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}
