package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/proposal"
)

// TestModelProposalIsWrittenOnceAndSentOnEveryAttempt (issue 18, item 2):
// the model answers differently every time it is asked. The first attempt's
// answer is stored before the claim; the attempt's bid is ambiguous, the
// next attempt reconciles (the bid was stored), and whatever the next
// attempts send or record carries the first text, byte for byte.
func TestModelProposalIsWrittenOnceAndSentOnEveryAttempt(t *testing.T) {
	var calls atomic.Int64
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "c", "object": "chat.completion", "created": 1767225600, "model": "m",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": fmt.Sprintf("Hello, answer number %d for this job.", n)}}},
			"usage": map[string]any{"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
		})
	}))
	t.Cleanup(llm.Close)
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 2; c.AmbiguousRate = 1 })
	ps := e.postings(t)
	w, err := proposal.New(proposal.Config{Writer: proposal.WriterOpenAI, BaseURL: llm.URL + "/v1", Model: "m", MaxTokens: 100},
		proposal.WithRedis(e.rdb))
	if err != nil {
		t.Fatal(err)
	}
	props := &worker.Proposals{Writer: w, Store: proposal.NewStore(e.rdb)}
	locks := lock.NewManager(e.rdb, lock.WithTTL(600e6))
	h, err := worker.NewBidHandler(locks, e.ledger, map[string]worker.Marketplace{
		mpID: {Adapter: e.adapter, Rules: bidAll(t), Proposals: props},
	}, worker.WithSettleDelay(150e6), worker.WithBusyDelay(20e6))
	if err != nil {
		t.Fatal(err)
	}
	// Every bid is stored but answered ambiguously: drive it until the
	// reconciliation records it.
	if err := drive(t, h, bidTask(t, ps[0])); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the model was asked %d times for one posting", n)
	}
	bids, ok, err := e.adapter.FindBid(context.Background(), ps[0].ID)
	if err != nil || !ok || !strings.HasPrefix(bids.ID, "b-") {
		t.Fatalf("find bid: %+v %v %v", bids, ok, err)
	}
	stored, ok, err := props.Store.Get(context.Background(), mpID, ps[0].ID)
	if err != nil || !ok || stored.Text != "Hello, answer number 1 for this job." || stored.Source != proposal.SourceModel {
		t.Fatalf("stored proposal %+v %v %v", stored, ok, err)
	}
	for _, text := range e.market.Proposals(ps[0].ID) {
		if text != stored.Text {
			t.Fatalf("a bid carried %q, not the stored %q", text, stored.Text)
		}
	}
	rec, _ := e.ledger.Get(context.Background(), mpID, ps[0].ID)
	if rec.State != ledger.StatePlaced {
		t.Fatalf("record %+v", rec)
	}
	e.assertNoDuplicates(t, 1)
}

// TestDryRunRecordsTheProposal (issue 18, item 4): dry-run mode shows the
// text a bid would carry: the ledger records it.
func TestDryRunRecordsTheProposal(t *testing.T) {
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"c","object":"chat.completion","created":1767225600,"model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"A dry run's proposal, written by the model."}}],"usage":{"total_tokens":20}}`))
	}))
	t.Cleanup(llm.Close)
	e := newEnv(t, func(c *sandbox.ServerConfig) { c.Postings = 1 })
	p := e.postings(t)[0]
	w, err := proposal.New(proposal.Config{Writer: proposal.WriterOpenAI, BaseURL: llm.URL + "/v1", Model: "m", MaxTokens: 100}, proposal.WithRedis(e.rdb))
	if err != nil {
		t.Fatal(err)
	}
	h, err := worker.NewBidHandler(lock.NewManager(e.rdb), e.ledger, map[string]worker.Marketplace{
		mpID: {Adapter: e.adapter, Rules: dryRunRules(t), Proposals: &worker.Proposals{Writer: w, Store: proposal.NewStore(e.rdb)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(context.Background(), bidTask(t, p)); err != nil {
		t.Fatal(err)
	}
	rec, _ := e.ledger.Get(context.Background(), mpID, p.ID)
	if rec.State != ledger.StateDryRun || rec.Proposal != "A dry run's proposal, written by the model." {
		t.Fatalf("dry run recorded %+v", rec)
	}
	e.assertNoDuplicates(t, 0)
}
