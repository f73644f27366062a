package httpx

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// Client sends one adapter's requests. What differs between marketplaces is
// in its fields; it is safe for concurrent use once set up.
type Client struct {
	HTTP     *http.Client
	Timeout  time.Duration // for one request, answer body included
	MaxBytes int64         // the size cap on an answer's body

	// AuthHeader: AuthValue is set on every request. AuthValue is secret
	// and is written nowhere else.
	AuthHeader string
	AuthValue  string
	UserAgent  string
}

// Answer is a complete answer, for the adapter to decode.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Get performs a read. Reads change nothing, so every failure to get a
// complete answer is transient. op names the operation in errors.
func (c *Client) Get(ctx context.Context, op, target string) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return Answer{}, marketplace.NewError(marketplace.ErrPermanent, op, ReasonInvalidInput, err)
	}
	c.setHeaders(req)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Answer{}, marketplace.NewError(marketplace.ErrTransient, op, ReasonNoAnswer, err)
	}
	defer resp.Body.Close()
	raw, err := readCapped(resp.Body, c.MaxBytes)
	if err != nil {
		return Answer{}, marketplace.NewError(marketplace.ErrTransient, op, readReason(err), fmt.Errorf("HTTP %d: reading answer: %w", resp.StatusCode, err))
	}
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: raw}, nil
}

func (c *Client) setHeaders(req *http.Request) {
	req.Header.Set(c.AuthHeader, c.AuthValue)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.UserAgent)
}
