package httpx

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"

	"github.com/bidder/bidder/marketplace"
)

// PostBid sends body, JSON, once: never resent by net/http (see the package
// doc) and never retried here. header is added to the request (an
// Idempotency-Key, say). A failure before the request had a connection is
// ErrTransient with ReasonNotSent; any later failure to get a complete
// answer is ErrAmbiguous, since the marketplace may have stored the bid.
// The one exception: a 4xx whose body cannot be read is returned as an
// Answer with a nil Body, because its status line already said the bid was
// refused.
func (c *Client) PostBid(ctx context.Context, op, target string, body []byte, header http.Header) (Answer, error) {
	return c.SendOnce(ctx, op, http.MethodPost, target, "application/json", body, header)
}

// SendOnce is PostBid for any state-changing request (a retract, say):
// method, and body of type contentType ("" sends none), sent at most once
// and classified the same way.
func (c *Client) SendOnce(ctx context.Context, op, method, target, contentType string, body []byte, header http.Header) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	// "Sent" must be decided conservatively, for every protocol: once the
	// request has a connection, any of its bytes may be on the wire.
	// WroteRequest is no such signal: HTTP/2's RoundTrip returns on a
	// cancelled context before its writer goroutine reports the write, and
	// a write can fail after its bytes left; either way a bid the
	// marketplace received would be taken for one never sent.
	var mayHaveLeft atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { mayHaveLeft.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return Answer{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, err)
	}
	// Without GetBody net/http cannot rewind the body, so it never resends
	// the request on a reused connection that turns out to be dead.
	req.GetBody = nil
	c.setHeaders(req)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}

	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Answer{}, sendError(op, mayHaveLeft.Load(), err)
	}
	defer resp.Body.Close()
	raw, err := readCapped(resp.Body, c.MaxBytes)
	if err != nil {
		if resp.StatusCode >= 400 && resp.StatusCode <= 499 {
			return Answer{Status: resp.StatusCode, Header: resp.Header}, nil
		}
		return Answer{}, marketplace.NewError(marketplace.ErrAmbiguous, op, readReason(err), fmt.Errorf("HTTP %d: reading answer: %w", resp.StatusCode, err))
	}
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: raw}, nil
}

// sendError classifies a failed send of a POST by whether any of it may have
// left: if not, the marketplace cannot have seen it.
func sendError(op string, mayHaveLeft bool, err error) *marketplace.Error {
	if !mayHaveLeft {
		return marketplace.NewError(marketplace.ErrTransient, op, ReasonNotSent, err)
	}
	return marketplace.NewError(marketplace.ErrAmbiguous, op, ReasonNoAnswer, err)
}
