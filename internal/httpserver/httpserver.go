// Package httpserver is bidder's one HTTP listener: /metrics, /healthz,
// /readyz, the asynqmon UI under /monitoring/ and the status page at /, drawn
// from the state every instance shares (Options.Status), with its resume
// buttons when Options.Actions is set.
package httpserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// MonitoringRoot is where the asynqmon UI is mounted.
const MonitoringRoot = "/monitoring"

// ErrActionsNeedAuth: Options.Actions without basic auth credentials.
var ErrActionsNeedAuth = errors.New("http: the status page's actions need basic auth (http.monitoring.basic_auth)")

// Options configures the server.
type Options struct {
	Addr     string
	Gatherer prometheus.Gatherer // /metrics
	// Ready reports why the process cannot do its work; nil error = ready.
	Ready func(ctx context.Context) error
	// Monitoring is the asynqmon handler (rooted at MonitoringRoot); nil
	// means the UI is off.
	Monitoring http.Handler
	// Username/Password protect the UI with HTTP basic auth when Username
	// is set, and the actions always.
	Username, Password string
	// Info is shown on the status page (role, version, where Redis is):
	// nothing secret goes in it.
	Info map[string]string
	// Status assembles the status page; nil shows only Info and readiness.
	Status StatusSource
	// Actions turns on the status page's resume buttons (needs Username).
	Actions Actions
	Logger  *zap.Logger
	// AllowedHosts are the Host names (http.allowed_hosts) answered besides
	// what the listener's address allows by itself; see Guard.
	AllowedHosts []string
}

// Server serves Options until its context ends.
type Server struct {
	opts     Options
	srv      *http.Server
	ln       net.Listener
	loopback bool // the listener only accepts local connections

	mu     sync.Mutex
	states map[net.Conn]http.ConnState // for shutdown: which connections carry a request
}

// Listen binds the address, so that the caller can log the real one (":0")
// and fail start-up on a taken port before anything else runs.
func Listen(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.NewRegistry()
	}
	if o.Actions != nil && o.Username == "" {
		return nil, ErrActionsNeedAuth
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("http: listen on %s: %w", o.Addr, err)
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	s := &Server{opts: o, ln: ln, loopback: ok && tcp.IP.IsLoopback()}
	s.states = map[net.Conn]http.ConnState{}
	s.srv = &http.Server{
		ConnState:         s.track,
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          zap.NewStdLog(o.Logger.Named("http")),
	}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve runs until ctx ends, then shuts down gracefully within 5s.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.srv.Shutdown(sctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			// net/http counts a connection that never sent a request idle
			// only after 5 s (the grace's length): a client's spare dialled
			// for a cancelled request, a balancer's pre-opened connection.
			// With no request in flight nothing is lost by closing them (one
			// whose first bytes are still arriving is cut, as the closed
			// listener would have refused it a moment later).
			if !s.busy() {
				_ = s.srv.Close()
			}
		}
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("http: shutdown: %w", err)
	}
	return nil
}

// track records each connection's state, for busy.
func (s *Server) track(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == http.StateClosed || st == http.StateHijacked {
		delete(s.states, c)
		return
	}
	s.states[c] = st
}

// busy reports a request in flight on any connection.
func (s *Server) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.states {
		if st == http.StateActive {
			return true
		}
	}
	return false
}

// Handler returns the routes behind Guard (exported for in-process tests).
func (s *Server) Handler() http.Handler {
	return Guard(s.routes(), s.loopback, s.opts.AllowedHosts)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(s.opts.Logger)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.opts.Monitoring != nil {
		ui := s.opts.Monitoring
		if s.opts.Username != "" {
			ui = basicAuth(s.opts.Username, s.opts.Password, ui)
		}
		mux.Handle(MonitoringRoot+"/", ui)
		mux.Handle(MonitoringRoot, http.RedirectHandler(MonitoringRoot+"/", http.StatusMovedPermanently))
	}
	mux.HandleFunc("GET /{$}", s.status)
	if s.opts.Actions != nil {
		mux.Handle("POST "+ActionsPath, basicAuth(s.opts.Username, s.opts.Password, http.HandlerFunc(s.resume)))
		mux.Handle("POST "+ReviewPath, basicAuth(s.opts.Username, s.opts.Password, http.HandlerFunc(s.review)))
		mux.Handle("POST "+RetractPath, basicAuth(s.opts.Username, s.opts.Password, http.HandlerFunc(s.retract)))
	}
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.opts.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %s\n", oneLine(err.Error()))
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// basicAuth compares digests in constant time, so neither the credentials
// nor their lengths leak through timing.
func basicAuth(user, pass string, next http.Handler) http.Handler {
	wantU, wantP := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotU, gotP := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		match := subtle.ConstantTimeCompare(gotU[:], wantU[:]) & subtle.ConstantTimeCompare(gotP[:], wantP[:])
		if !ok || match != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="bidder monitoring", charset="UTF-8"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func zapErr(err error) zap.Field { return zap.Error(err) }
