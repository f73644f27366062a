package redistest

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// ReplyDropper is a TCP proxy in front of a Server that can lose the reply
// to a command after Redis has executed it: the connection is closed instead
// of answering. go-redis then sees EOF and, unless told otherwise, sends the
// command again on a new connection, so a script whose reply was lost runs
// twice. That is how a client-library retry of a non-idempotent script is
// reproduced for real.
//
// It assumes one command in flight per connection (go-redis' default for
// non-pipelined commands): the reply read after a matching request is that
// request's reply.
type ReplyDropper struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	match   []byte // a request containing these bytes loses its reply
	left    int    // how many more replies to drop
	dropped int
	wg      sync.WaitGroup
}

// NewReplyDropper proxies to s until the test ends.
func NewReplyDropper(t testing.TB, s *Server) *ReplyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &ReplyDropper{ln: ln, upstream: s.Addr()}
	d.wg.Add(1)
	go d.accept()
	t.Cleanup(func() { _ = ln.Close(); d.wg.Wait() })
	return d
}

// Addr is the proxy's address, for a client's Options.Addr.
func (d *ReplyDropper) Addr() string { return d.ln.Addr().String() }

// DropReplies makes the next n requests that contain match (a script's
// SHA1, a key name) lose their replies once Redis has run them.
func (d *ReplyDropper) DropReplies(match string, n int) {
	d.mu.Lock()
	d.match, d.left = []byte(match), n
	d.mu.Unlock()
}

// Dropped is how many replies were dropped so far.
func (d *ReplyDropper) Dropped() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

func (d *ReplyDropper) accept() {
	defer d.wg.Done()
	for {
		c, err := d.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", d.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		d.wg.Add(2)
		pending := make(chan struct{}, 1) // a reply to drop is due on this connection
		go d.requests(c, u, pending)
		go d.replies(u, c, pending)
	}
}

// requests forwards client bytes, arming a drop before Redis can answer.
func (d *ReplyDropper) requests(c, u net.Conn, pending chan<- struct{}) {
	defer d.wg.Done()
	defer u.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			d.mu.Lock()
			if d.left > 0 && len(d.match) > 0 && bytes.Contains(buf[:n], d.match) {
				d.left--
				select {
				case pending <- struct{}{}:
				default:
				}
			}
			d.mu.Unlock()
			if _, werr := u.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// replies forwards Redis' bytes, or throws the armed reply away and closes
// both sides, as a network that failed after the command ran would.
func (d *ReplyDropper) replies(u, c net.Conn, pending <-chan struct{}) {
	defer d.wg.Done()
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := u.Read(buf)
		if n > 0 {
			select {
			case <-pending:
				d.mu.Lock()
				d.dropped++
				d.mu.Unlock()
				_ = u.Close()
				return
			default:
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
