package chaos

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
)

// The outage switch in front of a real sandbox server, read by the real
// sandbox adapter: what bidder sees during a marketplace_outage.
func TestOutageSwitch(t *testing.T) {
	cfg := sandbox.DefaultServerConfig()
	cfg.Tokens = []string{sandboxToken}
	cfg.Postings = 3
	cfg.Latency = sandbox.Latency{}
	srv, err := sandbox.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sw := &outageSwitch{next: srv}
	api := httptest.NewServer(sw)
	defer api.Close()
	admin := httptest.NewServer(sw.admin("admin-secret", srv.BidOutcomes))
	defer admin.Close()
	adminAddr := strings.TrimPrefix(admin.URL, "http://")
	ctx := context.Background()
	c := &http.Client{Timeout: 5 * time.Second}

	ad, err := sandbox.NewAdapter(marketplace.Config{ID: "sandbox", BaseURL: api.URL, Token: sandboxToken, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	page, err := ad.Scan(ctx, "", 10)
	if err != nil || len(page.Postings) != 3 {
		t.Fatalf("no outage: scan = %d postings, %v", len(page.Postings), err)
	}
	id := page.Postings[0].ID
	bid := marketplace.Bid{Amount: 100, Currency: page.Postings[0].Budget.Currency, Proposal: "hello", IdempotencyKey: "k1", FencingToken: 1}

	// Wrong admin token: refused, no outage.
	if _, err := SetOutage(ctx, c, adminAddr, "wrong", http.StatusServiceUnavailable, 1, false); err == nil {
		t.Fatal("outage switch accepted a wrong token")
	}
	if _, err := ad.Scan(ctx, "", 10); err != nil {
		t.Fatalf("after a refused switch: %v", err)
	}

	if _, err := SetOutage(ctx, c, adminAddr, "admin-secret", http.StatusServiceUnavailable, 1, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ad.PlaceBid(ctx, id, bid); !errors.Is(err, marketplace.ErrTransient) {
		t.Fatalf("503 outage: PlaceBid = %v, want ErrTransient (nothing was done)", err)
	}
	if _, err := ad.Scan(ctx, "", 10); !errors.Is(err, marketplace.ErrTransient) {
		t.Fatalf("503 outage: Scan = %v, want ErrTransient", err)
	}
	if st, err := SandboxStatsOf(ctx, c, api.URL); err != nil || st.Postings != 3 {
		t.Fatalf("/v1/stats during an outage: %+v, %v (it must get through)", st, err)
	}

	// Bids only: scans go through, bids and their lookups are refused.
	st, err := SetOutage(ctx, c, adminAddr, "admin-secret", http.StatusUnauthorized, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Refused != 2 {
		t.Fatalf("the 503 outage refused %d requests, want 2", st.Refused)
	}
	if _, err := ad.Scan(ctx, "", 10); err != nil {
		t.Fatalf("401 bids-only outage: Scan = %v, want through", err)
	}
	if _, err := ad.PlaceBid(ctx, id, bid); !errors.Is(err, marketplace.ErrPermanent) || marketplace.Reason(err) != "unauthorized" {
		t.Fatalf("401 bids-only outage: PlaceBid = %v, want permanent/unauthorized", err)
	}
	if _, _, err := ad.FindBid(ctx, id); marketplace.Reason(err) != "unauthorized" {
		t.Fatalf("401 bids-only outage: FindBid = %v, want unauthorized", err)
	}

	if _, err := SetOutage(ctx, c, adminAddr, "admin-secret", 0, 1, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ad.PlaceBid(ctx, id, bid); err != nil {
		t.Fatalf("after the outage: PlaceBid = %v", err)
	}
	if got := srv.Stats().Bids; got != 1 {
		t.Fatalf("sandbox holds %d bids, want 1 (the outage's requests never reached it)", got)
	}

	// A flaky outage refuses a share.
	if _, err := SetOutage(ctx, c, adminAddr, "admin-secret", http.StatusServiceUnavailable, 0.5, false); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for range 200 {
		if _, err := ad.Scan(ctx, "", 1); err != nil {
			failed++
		}
	}
	if failed < 50 || failed > 150 {
		t.Fatalf("flaky outage at 0.5 refused %d of 200 scans", failed)
	}
	for _, q := range []string{"status=500", "status=503&rate=0", "status=503&rate=2", "status=503&scope=x"} {
		req, _ := http.NewRequest(http.MethodPost, admin.URL+"/outage?"+q, nil)
		req.Header.Set("Authorization", "Bearer admin-secret")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("POST /outage?%s = %d, want 400", q, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, admin.URL+"/outage?status=0", nil)
	req.Header.Set("Authorization", "Bearer admin-secret")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /outage: %v %v, want 405", resp, err)
	}
}
