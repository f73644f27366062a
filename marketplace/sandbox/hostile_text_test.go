package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/marketplace"
)

// escapes is what a hostile marketplace puts into any text it sends: clear
// the screen, retitle the terminal, forge a line, flip the text direction,
// an 8-bit CSI.
const escapes = "\x1b[2J\x1b[H\x1b]0;owned\x07config OK\r\n\u202eevil\u009b31m\xff"

// TestServerTextIsCleanedAtTheBoundary: the worker stores an error's text
// in the ledger and `bidder ledger get` prints it; titles and skills reach
// logs and proposals. Nothing the adapter returns may carry what a terminal
// acts on.
func TestServerTextIsCleanedAtTheBoundary(t *testing.T) {
	js := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	posting := strings.NewReplacer(`"t"`, js("title "+escapes), `"d"`, js("para one\n\tpara two "+escapes),
		`["go"]`, "["+js("go"+escapes)+"]", `"http://x/p/p-1"`, js("http://x/p/p-1"+escapes), `"DE"`, js("DE"+escapes)).Replace(validPostingJSON)
	bid := strings.NewReplacer(`"USD"`, js("USD"+escapes), `"k"`, js("k"+escapes)).Replace(validBidJSON)
	a := brokenServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"error":"invalid_bid","detail":` + js(escapes) + `}`))
		case r.URL.Path == "/v1/postings":
			_, _ = w.Write([]byte(`{"postings":[` + posting + `],"next_cursor":"c1"}`))
		case r.URL.Path == "/v1/bids":
			_, _ = w.Write([]byte(`{"bids":[` + strings.TrimSuffix(strings.TrimPrefix(bid, `{"bid":`), "}") + `]}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"not_found","detail":` + js(escapes) + `}`))
		}
	})
	ctx := context.Background()
	var texts []string

	_, err := a.PlaceBid(ctx, "p-1", marketplace.Bid{Amount: 10, Currency: "USD", Proposal: "x", IdempotencyKey: "k1"})
	if err == nil {
		t.Fatal("422 accepted")
	}
	texts = append(texts, err.Error())
	_, err = a.Posting(ctx, "p-1")
	if err == nil {
		t.Fatal("404 accepted")
	}
	texts = append(texts, err.Error())

	page, err := a.Scan(ctx, "", 10)
	if err != nil || len(page.Postings) != 1 {
		t.Fatalf("scan: %+v %v", page, err)
	}
	p := page.Postings[0]
	texts = append(texts, p.Title, p.URL, p.Client.Country, strings.Join(p.Skills, ","))
	if !textsafe.Clean(strings.NewReplacer("\n", "", "\t", "").Replace(p.Description)) || !strings.HasPrefix(p.Description, "para one\n\tpara two ") {
		t.Errorf("description %q: paragraphs must stay, escapes must go", p.Description)
	}

	found, ok, err := a.FindBid(ctx, "p-1")
	if err != nil || !ok {
		t.Fatalf("find bid: %v %v", ok, err)
	}
	texts = append(texts, found.Currency, found.IdempotencyKey)

	for _, s := range texts {
		if !textsafe.Clean(s) {
			t.Errorf("adapter returned %q", s)
		}
	}
}
