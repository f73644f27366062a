package chaos

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/bidder/bidder/marketplace/sandbox"
)

// outageSwitch is the harness-only marketplace outage of the sandbox role:
// while it is on, it answers a share of the requests itself, 503 with the
// contract's error body (the adapter reads it as "nothing was done",
// transient) or 401 (a refused token), before the sandbox sees them.
// /v1/stats, the referee of a run, always gets through. The sandbox's HTTP
// contract is unchanged: the switch is set on a separate loopback listener
// that only the harness knows (admin).
type outageSwitch struct {
	next http.Handler

	mu       sync.Mutex
	status   int     // 0: no outage
	rate     float64 // share of requests refused, (0, 1]
	bidsOnly bool    // only the bid endpoints (POST .../bids, GET /v1/bids)
	refused  int64   // requests refused since the outage began
}

// OutageState is what POST /outage answers: the switch's state after the
// change, and how many requests the outage it replaced refused.
type OutageState struct {
	Status   int     `json:"status"`
	Rate     float64 `json:"rate"`
	BidsOnly bool    `json:"bids_only"`
	Refused  int64   `json:"refused"`
}

func (o *outageSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/stats" && o.refuse(isBidPath(r.URL.Path)) {
		o.answer(w)
		return
	}
	o.next.ServeHTTP(w, r)
}

// isBidPath: POST /v1/postings/{id}/bids and GET /v1/bids (reconciliation).
func isBidPath(p string) bool { return p == "/v1/bids" || strings.HasSuffix(p, "/bids") }

func (o *outageSwitch) refuse(bidPath bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.status == 0 || (o.bidsOnly && !bidPath) || (o.rate < 1 && rand.Float64() >= o.rate) {
		return false
	}
	o.refused++
	return true
}

func (o *outageSwitch) answer(w http.ResponseWriter) {
	o.mu.Lock()
	status := o.status
	o.mu.Unlock()
	body := `{"error":"unauthorized"}`
	if status == http.StatusServiceUnavailable {
		body = `{"error":"unavailable","detail":"chaos: marketplace outage"}`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body+"\n")
}

// set changes the outage and returns the new state with the number of
// requests the previous one refused.
func (o *outageSwitch) set(status int, rate float64, bidsOnly bool) OutageState {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := OutageState{Status: status, Rate: rate, BidsOnly: bidsOnly, Refused: o.refused}
	o.status, o.rate, o.bidsOnly, o.refused = status, rate, bidsOnly, 0
	return st
}

// admin serves POST /outage?status=503|401|0&rate=<(0,1]>&scope=all|bids
// with the bearer token.
func (o *outageSwitch) admin(token string, bids func() []sandbox.BidOutcome) http.Handler {
	mux := http.NewServeMux()
	authorized := func(w http.ResponseWriter, r *http.Request) bool {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return false
		}
		return true
	}
	// GET /bids: every bid with its account and outcome (accounts.go).
	mux.HandleFunc("GET /bids", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(bids())
	})
	mux.HandleFunc("/outage", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		status, rate, bidsOnly, err := parseOutage(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(o.set(status, rate, bidsOnly))
	})
	return mux
}

func parseOutage(q url.Values) (status int, rate float64, bidsOnly bool, err error) {
	status, err = strconv.Atoi(q.Get("status"))
	if err != nil || (status != 0 && status != http.StatusServiceUnavailable && status != http.StatusUnauthorized) {
		return 0, 0, false, fmt.Errorf("status: want 0, 401 or 503, got %q", q.Get("status"))
	}
	rate = 1.0
	if v := q.Get("rate"); v != "" {
		if rate, err = strconv.ParseFloat(v, 64); err != nil || rate <= 0 || rate > 1 {
			return 0, 0, false, fmt.Errorf("rate: want (0, 1], got %q", v)
		}
	}
	switch q.Get("scope") {
	case "", "all":
	case "bids":
		bidsOnly = true
	default:
		return 0, 0, false, fmt.Errorf("scope: want all or bids, got %q", q.Get("scope"))
	}
	return status, rate, bidsOnly, nil
}

// SetOutage sets the outage of the sandbox role whose admin listener is at
// addr (status 0 ends it) and returns what the switch answered.
func SetOutage(ctx context.Context, c *http.Client, addr, token string, status int, rate float64, bidsOnly bool) (OutageState, error) {
	scope := "all"
	if bidsOnly {
		scope = "bids"
	}
	u := fmt.Sprintf("http://%s/outage?status=%d&rate=%g&scope=%s", addr, status, rate, scope)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return OutageState{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return OutageState{}, fmt.Errorf("sandbox outage switch: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return OutageState{}, fmt.Errorf("sandbox outage switch: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var st OutageState
	if err := json.Unmarshal(b, &st); err != nil {
		return OutageState{}, fmt.Errorf("sandbox outage switch: %w", err)
	}
	return st, nil
}
