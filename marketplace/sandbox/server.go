package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Server is an in-memory sandbox marketplace: an http.Handler serving
// sandbox-api.md. It is safe for concurrent use.
type Server struct {
	cfg      ServerConfig
	accounts map[string]string // token -> account; read-only after NewServer
	mux      *http.ServeMux
	faults   *faults
	postings postingStore
	bids     bidStore

	mu     sync.Mutex // guards closed, and orders wg.Add before Close's wg.Wait
	closed bool
	done   chan struct{} // closed by Close; stops generators
	wg     sync.WaitGroup
}

// NewServer validates cfg, builds the server and publishes cfg.Postings.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		accounts: make(map[string]string, len(cfg.Tokens)),
		faults:   newFaults(cfg),
		postings: postingStore{byID: map[string]*storedPosting{}},
		bids:     bidStore{byPosting: map[string]*postingBids{}, byKey: map[idemKey]*wireBid{}},
		done:     make(chan struct{}),
	}
	for _, t := range cfg.Tokens {
		s.accounts[t] = AccountFromToken(t)
	}
	s.routes()
	s.Publish(cfg.Postings)
	return s, nil
}

// AccountFromToken is the stable, non-secret account name of a token; the
// adapter uses the same one when config names no account.
func AccountFromToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "acct-" + hex.EncodeToString(sum[:])[:12]
}

// Publish publishes n postings now and returns their IDs in publication order.
func (s *Server) Publish(n int) []string {
	if n <= 0 {
		return nil
	}
	return s.postings.publish(s.cfg.Seed, n, s.cfg.Now())
}

// Generate publishes postings at cfg.Rate per second until ctx is done or the
// server is closed. With a zero rate it returns at once.
func (s *Server) Generate(ctx context.Context) error {
	if s.cfg.Rate <= 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	// Catch up to "elapsed × rate" on every tick instead of publishing one
	// per tick, so high rates are met and a slow tick does not lose postings.
	period := max(time.Duration(float64(time.Second)/s.cfg.Rate), 5*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	start := time.Now()
	published := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		case now := <-t.C:
			due := int(now.Sub(start).Seconds()*s.cfg.Rate) - published
			if due > 0 {
				s.Publish(due)
				published += due
			}
		}
	}
}

// Close stops the generators and waits for them. The handler keeps answering
// (an http.Server shutting down may still be finishing requests).
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Stats returns the counters GET /v1/stats serves.
func (s *Server) Stats() Stats {
	st := s.bids.snapshot()
	now := s.cfg.Now()
	s.countOutcomes(&st, now)
	ps := &s.postings
	ps.mu.RLock()
	n := len(ps.all)
	first := ps.firstOpenLocked(now, s.cfg.CloseAfter)
	ps.mu.RUnlock()
	st.Postings = int64(n)
	st.OpenPostings = int64(n - first)
	return st
}

// Proposals returns the proposal text of every bid on a posting, by every
// account, oldest first within an account: what a test checks a bid sent.
func (s *Server) Proposals(postingID string) []string {
	bs := &s.bids
	bs.mu.Lock()
	defer bs.mu.Unlock()
	var out []string
	if pb := bs.byPosting[postingID]; pb != nil {
		for _, bids := range pb.byAccount {
			for _, b := range bids {
				out = append(out, b.Proposal)
			}
		}
	}
	return out
}

// Config returns the effective configuration (defaults filled in).
func (s *Server) Config() ServerConfig { return s.cfg }

// Serve serves HTTP on ln and runs the generator until ctx is done, then shuts
// down gracefully (in-flight requests get up to 10s) and closes the server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.ServeHandler(ctx, ln, s)
}

// ServeHandler is Serve with h answering the requests: the server wrapped
// by a caller's handler (the chaos harness puts an outage switch in front).
func (s *Server) ServeHandler(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(s.cfg.Logger),
	}
	genCtx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		_ = s.Generate(genCtx) // only ever returns nil
	}()

	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	select {
	case err := <-serveErr:
		stopGen()
		<-genDone
		s.Close()
		return fmt.Errorf("sandbox: serve: %w", err)
	case <-ctx.Done():
	}
	stopGen()
	<-genDone
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(shutCtx)
	if serr := <-serveErr; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	s.Close()
	if err != nil {
		return fmt.Errorf("sandbox: shutdown: %w", err)
	}
	return nil
}

// ServeHTTP applies latency, auth and faults, then routes. /v1/stats is the
// referee of a run, so it gets neither latency nor faults.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/stats" {
		sleep(r.Context(), s.faults.delay())
	}
	account, ok := s.authenticate(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, wireError{Error: codeUnauthorized})
		return
	}
	if r.URL.Path != "/v1/stats" {
		if s.faults.roll(s.cfg.ErrorRate) {
			writeJSON(w, http.StatusServiceUnavailable, wireError{Error: codeUnavailable, Detail: "injected error before doing anything"})
			return
		}
		if s.faults.roll(s.cfg.RateLimitRate) {
			w.Header().Set("Retry-After", retryAfterSeconds(s.cfg.RetryAfter))
			writeJSON(w, http.StatusTooManyRequests, wireError{Error: codeRateLimited})
			return
		}
	}
	s.mux.ServeHTTP(w, r.WithContext(withAccount(r.Context(), account)))
}

func (s *Server) authenticate(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	account, ok := s.accounts[strings.TrimSpace(token)]
	return account, ok
}

// retryAfterSeconds rounds up: asking a client to come back sooner than
// configured would defeat the point.
func retryAfterSeconds(d time.Duration) string {
	secs := (d + time.Second - 1) / time.Second
	return fmt.Sprint(int64(secs))
}

type accountKey struct{}

func withAccount(ctx context.Context, account string) context.Context {
	return context.WithValue(ctx, accountKey{}, account)
}

func accountOf(ctx context.Context) string {
	a, _ := ctx.Value(accountKey{}).(string)
	return a
}
