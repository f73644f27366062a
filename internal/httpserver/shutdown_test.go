package httpserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestShutdownIgnoresConnectionsWithoutARequest: a connection that never
// sent a request (an HTTP client's spare dialled after its request was
// cancelled, a load balancer's pre-opened one, a port probe) must not hold
// a stop for the shutdown's whole grace and then fail it: net/http counts
// such a connection idle only after 5 s, the grace's length, so SIGTERM
// ended the worker with "http: shutdown: context deadline exceeded" and
// exit 1 (a chaos run). A request in flight is still waited for.
func TestShutdownIgnoresConnectionsWithoutARequest(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s, err := Listen(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	s.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()

	idle, err := net.Dial("tcp", s.Addr()) // connected, never asks anything
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/slow")
		if err != nil {
			answer <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answer <- string(b)
	}()
	<-started
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if got := <-answer; got != "done" {
		t.Fatalf("the request in flight got %q", got)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve still waiting on a connection that never sent a request")
	}
}
