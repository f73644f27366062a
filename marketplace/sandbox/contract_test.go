package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// Contract tests: the adapter against the server over real HTTP, one row of
// sandbox-api.md at a time.

const secretToken = "s3cr3t-contract-token"

// errLog collects every error a test saw, to check none leaks the token.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) add(err error) error {
	if err != nil {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	}
	return err
}

func newTestAdapter(t testing.TB, base, token string, timeout time.Duration) *Adapter {
	t.Helper()
	a, err := NewAdapter(marketplace.Config{ID: "sandbox-test", BaseURL: base, Token: token, RequestTimeout: timeout})
	if err != nil {
		t.Fatalf("NewAdapter: %v", err)
	}
	return a
}

func contractServer(t testing.TB, cfg ServerConfig) (*Server, *Adapter, *errLog) {
	t.Helper()
	cfg.Tokens = append(cfg.Tokens, secretToken, testToken)
	s, hs := startServer(t, cfg)
	log := &errLog{}
	t.Cleanup(func() {
		for _, err := range log.errs {
			if strings.Contains(err.Error(), secretToken) {
				t.Errorf("error leaks the token: %v", err)
			}
		}
	})
	return s, newTestAdapter(t, hs.URL, secretToken, 5*time.Second), log
}

func wantClass(t testing.TB, err error, class error, reason string) *marketplace.Error {
	t.Helper()
	var me *marketplace.Error
	if !errors.As(err, &me) {
		t.Fatalf("error %v (%T) is not a *marketplace.Error", err, err)
	}
	if !errors.Is(err, class) {
		t.Fatalf("error %v: class %v, want %v", err, me.Class, class)
	}
	if reason != "" && me.Reason != reason {
		t.Fatalf("error %v: reason %q, want %q", err, me.Reason, reason)
	}
	return me
}

// bidFor builds a valid bid from the server's own record of the posting, so
// tests with faults switched on need no request to set up.
func bidFor(t testing.TB, s *Server, a *Adapter, id string) marketplace.Bid {
	t.Helper()
	sp, ok := s.postings.get(id)
	if !ok {
		t.Fatalf("no posting %s", id)
	}
	return marketplace.Bid{
		Amount:         sp.p.Budget.Max,
		Currency:       sp.p.Budget.Currency,
		Proposal:       "Happy to help with " + sp.p.Title,
		IdempotencyKey: marketplace.IdempotencyKey(a.ID(), id, a.Account()),
		FencingToken:   3,
	}
}

func TestContractScan(t *testing.T) {
	s, a, log := contractServer(t, ServerConfig{Postings: 250})
	ctx := context.Background()
	var ids []string
	cursor := ""
	for range 10 {
		page, err := a.Scan(ctx, cursor, 100)
		if log.add(err) != nil {
			t.Fatalf("Scan: %v", err)
		}
		for _, p := range page.Postings {
			if p.MarketplaceID != "sandbox-test" || p.Status != marketplace.StatusOpen || p.PostedAt.IsZero() || !strings.HasSuffix(p.URL, "/p/"+p.ID) {
				t.Fatalf("posting mapped badly: %+v", p)
			}
			ids = append(ids, p.ID)
		}
		if len(page.Postings) == 0 {
			if page.NextCursor != cursor {
				t.Fatalf("caught-up page moved cursor %q -> %q", cursor, page.NextCursor)
			}
			break
		}
		cursor = page.NextCursor
	}
	if len(ids) != 250 || ids[0] != "p-000001" || ids[249] != "p-000250" {
		t.Fatalf("scanned %d postings (%v...)", len(ids), ids[:min(3, len(ids))])
	}
	// New postings show up after the saved cursor.
	s.Publish(2)
	page, err := a.Scan(ctx, cursor, 0)
	if log.add(err) != nil || len(page.Postings) != 2 || page.Postings[0].ID != "p-000251" {
		t.Fatalf("after publish: %+v, %v", page.Postings, err)
	}
	// A cursor the server never issued is a permanent error.
	_, err = a.Scan(ctx, "bogus", 10)
	wantClass(t, log.add(err), marketplace.ErrPermanent, codeBadRequest)
}

func TestContractBidTable(t *testing.T) {
	clock := newFakeClock()
	s, a, log := contractServer(t, ServerConfig{Postings: 3, CloseAfter: time.Hour, Now: clock.Now})
	ctx := context.Background()
	bid := bidFor(t, s, a, "p-000001")

	// 201: created.
	placed, err := a.PlaceBid(ctx, "p-000001", bid)
	if log.add(err) != nil {
		t.Fatalf("201 row: %v", err)
	}
	if placed.ID == "" || placed.PostingID != "p-000001" || placed.FencingToken != 3 || placed.IdempotencyKey != bid.IdempotencyKey || placed.Amount != bid.Amount {
		t.Fatalf("201 row: placed %+v for %+v", placed, bid)
	}

	// 200: the same key again is the original bid.
	again, err := a.PlaceBid(ctx, "p-000001", bid)
	if log.add(err) != nil || again.ID != placed.ID {
		t.Fatalf("200 row: %+v, %v; want the original %s", again, err, placed.ID)
	}

	// 409: another key from the same account, with the existing bid.
	other := bid
	other.IdempotencyKey = "another-key"
	_, err = a.PlaceBid(ctx, "p-000001", other)
	wantClass(t, log.add(err), marketplace.ErrAlreadyBid, codeAlreadyBid)
	if ex, ok := marketplace.ExistingBid(err); !ok || ex.ID != placed.ID {
		t.Fatalf("409 row: existing %+v, %v; want %s", ex, ok, placed.ID)
	}

	// 404.
	_, err = a.PlaceBid(ctx, "p-424242", bid)
	wantClass(t, log.add(err), marketplace.ErrPermanent, codeNotFound)

	// 422: each invalid field.
	for name, mut := range map[string]func(*marketplace.Bid){
		"zero amount":    func(b *marketplace.Bid) { b.Amount = 0 },
		"empty proposal": func(b *marketplace.Bid) { b.Proposal = "" },
		"wrong currency": func(b *marketplace.Bid) { b.Currency = "XXX" },
	} {
		b := bidFor(t, s, a, "p-000002")
		mut(&b)
		_, err = a.PlaceBid(ctx, "p-000002", b)
		me := wantClass(t, log.add(err), marketplace.ErrPermanent, codeInvalidBid)
		if me.Err == nil || !strings.Contains(me.Err.Error(), "422") {
			t.Fatalf("422 row (%s): no detail in %v", name, err)
		}
	}

	// An empty IdempotencyKey is derived, never sent empty (the server would 422).
	b2 := bidFor(t, s, a, "p-000002")
	b2.IdempotencyKey = ""
	placed2, err := a.PlaceBid(ctx, "p-000002", b2)
	if log.add(err) != nil || placed2.IdempotencyKey != marketplace.IdempotencyKey(a.ID(), "p-000002", a.Account()) {
		t.Fatalf("derived key: %+v, %v", placed2, err)
	}

	// 410: the posting closed.
	b3 := bidFor(t, s, a, "p-000003")
	clock.Advance(2 * time.Hour)
	_, err = a.PlaceBid(ctx, "p-000003", b3)
	wantClass(t, log.add(err), marketplace.ErrPostingClosed, codeClosed)
	p3, err := a.Posting(ctx, "p-000003")
	if log.add(err) != nil || p3.Status != marketplace.StatusClosed {
		t.Fatalf("closed posting reads as %q, %v", p3.Status, err)
	}

	// FindBid: found, and not found.
	got, found, err := a.FindBid(ctx, "p-000001")
	if log.add(err) != nil || !found || got.ID != placed.ID {
		t.Fatalf("FindBid(p-000001) = %+v, %v, %v", got, found, err)
	}
	_, found, err = a.FindBid(ctx, "p-000003")
	if log.add(err) != nil || found {
		t.Fatalf("FindBid(p-000003) found=%v err=%v, want none", found, err)
	}
	_, err = a.Posting(ctx, "p-424242")
	wantClass(t, log.add(err), marketplace.ErrPermanent, codeNotFound)

	want := Stats{Postings: 3, OpenPostings: 0, Bids: 2, RejectedDuplicates: 1, IdempotentReplays: 1}
	if st := s.Stats(); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
}

func TestContractUnauthorized(t *testing.T) {
	_, hs := startServer(t, ServerConfig{Postings: 1})
	a := newTestAdapter(t, hs.URL, "wrong-token", time.Second)
	ctx := context.Background()
	_, err := a.Scan(ctx, "", 10)
	wantClass(t, err, marketplace.ErrPermanent, codeUnauthorized)
	_, err = a.PlaceBid(ctx, "p-000001", marketplace.Bid{Amount: 1, Currency: "USD", Proposal: "x"})
	wantClass(t, err, marketplace.ErrPermanent, codeUnauthorized)
	_, _, err = a.FindBid(ctx, "p-000001")
	wantClass(t, err, marketplace.ErrPermanent, codeUnauthorized)
	if strings.Contains(err.Error(), "wrong-token") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestContractFaults(t *testing.T) {
	ctx := context.Background()

	t.Run("error_rate gives transient and stores nothing", func(t *testing.T) {
		s, a, log := contractServer(t, ServerConfig{Postings: 1, ErrorRate: 1})
		bid := bidFor(t, s, a, "p-000001")
		_, err := a.PlaceBid(ctx, "p-000001", bid)
		wantClass(t, log.add(err), marketplace.ErrTransient, codeUnavailable)
		_, err = a.Scan(ctx, "", 10)
		wantClass(t, log.add(err), marketplace.ErrTransient, "")
		_, _, err = a.FindBid(ctx, "p-000001")
		wantClass(t, log.add(err), marketplace.ErrTransient, "")
		if st := s.Stats(); st.Bids != 0 {
			t.Fatalf("bids %d after a 503, want 0", st.Bids)
		}
	})

	t.Run("rate_limit_rate gives RetryAfter", func(t *testing.T) {
		_, a, log := contractServer(t, ServerConfig{Postings: 1, RateLimitRate: 1, RetryAfter: 2 * time.Second})
		_, err := a.PlaceBid(ctx, "p-000001", marketplace.Bid{Amount: 1, Currency: "USD", Proposal: "x"})
		wantClass(t, log.add(err), marketplace.ErrRateLimited, codeRateLimited)
		if d, ok := marketplace.RetryAfter(err); !ok || d != 2*time.Second {
			t.Fatalf("RetryAfter = %s, %v; want 2s", d, ok)
		}
		_, err = a.Scan(ctx, "", 10)
		wantClass(t, log.add(err), marketplace.ErrRateLimited, codeRateLimited)
	})

	t.Run("ambiguous_rate stores the bid and never lets it be resent", func(t *testing.T) {
		// The strictest mode: nothing on the server stops a resent bid
		// from becoming a duplicate.
		const n = 60
		s, a, log := contractServer(t, ServerConfig{Postings: n, Idempotency: IdempotencyOff, Duplicates: DuplicatesAccept, AmbiguousRate: 1, Seed: 3})
		for i := range n {
			id := postingID(uint64(i + 1))
			_, err := a.PlaceBid(ctx, id, bidFor(t, s, a, id))
			wantClass(t, log.add(err), marketplace.ErrAmbiguous, "")
			got, found, err := a.FindBid(ctx, id)
			if log.add(err) != nil || !found || got.PostingID != id {
				t.Fatalf("FindBid(%s) after ambiguous answer: %+v, %v, %v", id, got, found, err)
			}
		}
		if s.faults.ambiguous504.Load() == 0 || s.faults.ambiguousDrops.Load() == 0 {
			t.Fatalf("504s %d, drops %d: want both kinds exercised", s.faults.ambiguous504.Load(), s.faults.ambiguousDrops.Load())
		}
		if st := s.Stats(); st.Bids != n || st.DuplicateBids != 0 {
			t.Fatalf("stats %+v: want %d bids and no duplicates (the adapter must not resend)", st, n)
		}
	})

	t.Run("latency beyond the timeout", func(t *testing.T) {
		s, hs := startServer(t, ServerConfig{Postings: 1, Tokens: []string{secretToken}, Latency: Latency{Min: 2 * time.Second, Max: 2 * time.Second}})
		slow := newTestAdapter(t, hs.URL, secretToken, 50*time.Millisecond)
		_, err := slow.PlaceBid(ctx, "p-000001", bidFor(t, s, slow, "p-000001"))
		wantClass(t, err, marketplace.ErrAmbiguous, ReasonNoAnswer)
		_, err = slow.Scan(ctx, "", 10)
		wantClass(t, err, marketplace.ErrTransient, "")
	})

	t.Run("latency range is applied", func(t *testing.T) {
		_, a, log := contractServer(t, ServerConfig{Postings: 1, Latency: Latency{Min: 20 * time.Millisecond, Max: 30 * time.Millisecond}})
		start := time.Now()
		_, err := a.Scan(ctx, "", 10)
		if log.add(err) != nil || time.Since(start) < 20*time.Millisecond {
			t.Fatalf("Scan took %s, err %v; want >= 20ms and success", time.Since(start), err)
		}
	})

	t.Run("connection refused is transient", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		a := newTestAdapter(t, "http://"+addr, secretToken, time.Second)
		_, err = a.PlaceBid(ctx, "p-000001", marketplace.Bid{Amount: 1, Currency: "USD", Proposal: "x"})
		wantClass(t, err, marketplace.ErrTransient, ReasonNotSent)
		_, err = a.Scan(ctx, "", 10)
		wantClass(t, err, marketplace.ErrTransient, "")
	})
}

func TestAdapterConfig(t *testing.T) {
	for name, cfg := range map[string]marketplace.Config{
		"no id":       {BaseURL: "http://x", Token: "t"},
		"bad url":     {ID: "m", BaseURL: "ftp://x", Token: "t"},
		"no host":     {ID: "m", BaseURL: "http://", Token: "t"},
		"no token":    {ID: "m", BaseURL: "http://x"},
		"user info":   {ID: "m", BaseURL: "http://u:p@x", Token: "t"},
		"neg timeout": {ID: "m", BaseURL: "http://x", Token: "t", RequestTimeout: -1},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", name, err)
		}
	}

	a, err := New(marketplace.Config{ID: "m", BaseURL: "http://x/api/", Token: secretToken})
	if err != nil {
		t.Fatal(err)
	}
	if acct := a.Account(); !strings.HasPrefix(acct, "acct-") || len(acct) != 17 || strings.Contains(acct, secretToken) || acct != AccountFromToken(secretToken) {
		t.Fatalf("derived account %q", acct)
	}
	named, _ := New(marketplace.Config{ID: "m", BaseURL: "http://x", Token: secretToken, Account: "team-1"})
	if named.Account() != "team-1" || named.ID() != "m" {
		t.Fatalf("account %q id %q", named.Account(), named.ID())
	}
	if got := a.(*Adapter).endpoint(nil, "v1", "postings", "a/b c", "bids"); got != "http://x/api/v1/postings/a%2Fb%20c/bids" {
		t.Fatalf("endpoint escaping: %s", got)
	}

	r := marketplace.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	if _, err := r.New(AdapterName, marketplace.Config{ID: "m", BaseURL: "http://x", Token: "t"}); err != nil {
		t.Fatalf("registry: %v", err)
	}
}

func TestPlaceBidRefusesBadInputWithoutSending(t *testing.T) {
	s, a, _ := contractServer(t, ServerConfig{Postings: 1})
	ctx := context.Background()
	for name, c := range map[string]struct {
		id  string
		bid marketplace.Bid
	}{
		"empty id":  {"", marketplace.Bid{Amount: 1}},
		"dot dot":   {"..", marketplace.Bid{Amount: 1}},
		"long key":  {"p-000001", marketplace.Bid{Amount: 1, IdempotencyKey: strings.Repeat("k", 129)}},
		"NaN money": {"p-000001", marketplace.Bid{Amount: nan()}},
	} {
		_, err := a.PlaceBid(ctx, c.id, c.bid)
		wantClass(t, err, marketplace.ErrPermanent, ReasonInvalidInput)
		_ = name
	}
	if st := s.Stats(); st.Bids != 0 {
		t.Fatalf("bids %d", st.Bids)
	}
}

func nan() float64 {
	var zero float64
	return zero / zero
}

// Many workers on one adapter: the transport keeps enough idle connections
// that steady load reuses them rather than redialling.
func TestConcurrentWorkersReuseConnections(t *testing.T) {
	s, err := NewServer(ServerConfig{Tokens: []string{testToken}, Postings: 64 * 5, Idempotency: IdempotencyOff, Duplicates: DuplicatesAccept})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s)
	var conns atomic.Int64
	hs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	hs.Start()
	defer hs.Close()
	a := newTestAdapter(t, hs.URL, testToken, 5*time.Second)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64*5)
	for w := range 64 {
		wg.Go(func() {
			for i := range 5 {
				id := postingID(uint64(w*5 + i + 1))
				p, err := a.Posting(ctx, id)
				if err == nil {
					_, err = a.PlaceBid(ctx, id, marketplace.Bid{Amount: p.Budget.Max, Currency: p.Budget.Currency, Proposal: "x", FencingToken: 1})
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := conns.Load()
	if st := s.Stats(); st.Bids != 64*5 || st.DuplicateBids != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n > 2*64 {
		t.Fatalf("%d connections for 64 workers and 640 requests: not reused", n)
	}
}
