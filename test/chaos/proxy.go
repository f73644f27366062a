package chaos

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy is an in-process TCP proxy between bidder processes and Redis that
// can add latency, cut every connection, and blackhole traffic for a while.
// A blackholed proxy keeps connections open but forwards nothing, like a
// network partition: writes pile up, nothing is answered, nothing is reset.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	latency   time.Duration
	holeUntil time.Time
	closed    bool
	wg        sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to upstream.
func NewProxy(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listen address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetLatency delays every forwarded chunk by d (0 = none).
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// Blackhole forwards nothing, in either direction, for d. New connections
// are accepted and then stall too.
func (p *Proxy) Blackhole(d time.Duration) {
	p.mu.Lock()
	p.holeUntil = time.Now().Add(d)
	p.mu.Unlock()
}

// Cut closes every open connection (both sides), like a reset.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
		n++
	}
	return n / 2
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	if !p.track(c) {
		_ = c.Close()
		return
	}
	p.waitHole()
	up, err := net.DialTimeout("tcp", p.upstream, 2*time.Second)
	if err != nil {
		p.untrack(c)
		return
	}
	if !p.track(up) {
		_ = up.Close()
		p.untrack(c)
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
	p.untrack(c)
	p.untrack(up)
	<-done
}

// waitHole blocks while the proxy is blackholed.
func (p *Proxy) waitHole() {
	for {
		p.mu.Lock()
		until, closed := p.holeUntil, p.closed
		p.mu.Unlock()
		if closed || !time.Now().Before(until) {
			return
		}
		time.Sleep(min(time.Until(until), 50*time.Millisecond))
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.waitHole()
			p.mu.Lock()
			lat := p.latency
			p.mu.Unlock()
			if lat > 0 {
				time.Sleep(lat)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}
