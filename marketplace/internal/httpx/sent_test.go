package httpx

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
)

const bidBody = `{"amount":1,"marker":"the-last-bytes-of-the-bid"}`

// stallConn lets writes through, but once a write carrying the bid's last
// bytes has gone out it does not return: the writer goroutine is
// descheduled right after the bytes left, as a loaded machine can do. It
// returns only when the test lets it or the transport closes it.
type stallConn struct {
	net.Conn
	release <-chan struct{}
	once    sync.Once
	closed  chan struct{}
	failing bool // report the write failed although its bytes went out
}

func (c *stallConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err == nil && bytes.Contains(p, []byte("the-last-bytes-of-the-bid")) {
		if c.failing {
			return n, net.ErrClosed
		}
		select {
		case <-c.release:
		case <-c.closed:
			return n, net.ErrClosed
		}
	}
	return n, err
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestPostBidFullySentIsAmbiguousOnEveryProtocol (issue 13, item 2): the
// request reached the marketplace whole, then the caller's context ended
// (request timeout, lock lost) before net/http reported WroteRequest. The
// bid may exist: the answer must be ErrAmbiguous, never "not sent", or the
// intent is cleared and the bid goes out a second time.
func TestPostBidFullySentIsAmbiguousOnEveryProtocol(t *testing.T) {
	for _, tc := range []struct {
		name, proto string
		failing     bool
	}{
		{"HTTP/1.1", "HTTP/1.1", false},
		{"HTTP/2", "HTTP/2", false},
		{"HTTP/1.1 write error after the bytes left", "HTTP/1.1", true},
		{"HTTP/2 write error after the bytes left", "HTTP/2", true},
	} {
		proto := tc.proto
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan struct{}, 1)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if string(b) == bidBody {
					got <- struct{}{}
				}
				<-r.Context().Done() // never answers
			}))
			srv.Config.Protocols = new(http.Protocols)
			if proto == "HTTP/2" {
				srv.Config.Protocols.SetUnencryptedHTTP2(true)
			} else {
				srv.Config.Protocols.SetHTTP1(true)
			}
			srv.Start()
			defer srv.Close()

			release := make(chan struct{})
			defer close(release)
			tr := NewHTTPClient(5 * time.Second).Transport.(*http.Transport).Clone()
			tr.Protocols = new(http.Protocols)
			if proto == "HTTP/2" {
				tr.Protocols.SetUnencryptedHTTP2(true)
			} else {
				tr.Protocols.SetHTTP1(true)
			}
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &stallConn{Conn: c, release: release, closed: make(chan struct{}), failing: tc.failing}, nil
			}
			c := testClient()
			c.MaxBytes = 1 << 20
			c.HTTP = &http.Client{Transport: tr}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := c.PostBid(ctx, "place_bid", srv.URL+"/bids", []byte(bidBody), nil)
				done <- err
			}()
			select {
			case <-got:
			case err := <-done:
				if tc.failing {
					// The write failed in the caller's eyes after its bytes
					// left: whether the server got all of them or not, the
					// caller cannot know, so neither may PostBid claim to.
					wantError(t, err, marketplace.ErrAmbiguous, ReasonNoAnswer)
					return
				}
				t.Fatalf("PostBid returned before the server had the bid: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the server never received the bid")
			}
			cancel() // the marketplace has the bid; the caller gives up
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("PostBid did not return after its context ended")
			}
			wantError(t, err, marketplace.ErrAmbiguous, ReasonNoAnswer)
		})
	}
}
