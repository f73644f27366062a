package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/internal/history"
	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/internal/report"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/marketplace/sandbox"
	"github.com/bidder/bidder/scanner"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// TestReportEqualsTheSandboxsTruth (issue 17, item 6): 1,000 postings go
// through the real pipeline against the sandbox, which awards a seeded
// share; the tracker records the outcomes; the report's counts and win
// rate, overall and per dimension, equal what the sandbox decided.
func TestReportEqualsTheSandboxsTruth(t *testing.T) {
	const mp, tok, n = "sbx", "report-token", 1000
	// The sandbox decides each bid a second after it; the ledger's times
	// are Redis', so both run on the real clock.
	const decideAfter = time.Second
	srv, err := sandbox.NewServer(sandbox.ServerConfig{Tokens: []string{tok}, Postings: n, DecideAfter: decideAfter, AwardRate: 0.25, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); _ = srv.Close() })
	ad, err := sandbox.New(marketplace.Config{ID: mp, BaseURL: hs.URL, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	led := ledger.New(rdb, ledger.WithTracking(time.Millisecond, mp))
	eng, err := rules.New(rules.Config{
		Keywords: rules.KeywordConfig{Include: []string{"api", "data", "web", "app", "report", "go", "python", "design"}},
		Amount: rules.AmountConfig{Fixed: rules.AmountRule{Strategy: rules.StrategyRangePoint, Point: 0},
			Hourly: rules.AmountRule{Strategy: rules.StrategyRangePoint, Point: 0}},
		Proposal: rules.ProposalConfig{Template: "I can do {{.Title}}."},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := history.NewRecorder(rdb)
	h, err := worker.NewBidHandler(lock.NewManager(rdb), led, map[string]worker.Marketplace{mp: {Adapter: ad, Rules: eng}}, worker.WithHistory(rec))
	if err != nil {
		t.Fatal(err)
	}
	postings := scanAll(t, ad)
	if len(postings) != n {
		t.Fatalf("scanned %d postings, want %d", len(postings), n)
	}
	start := time.Now()
	for _, p := range postings {
		task, err := worker.NewBidTask(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.ProcessTask(ctx, asynq.NewTask(task.Type(), task.Payload())); err != nil {
			t.Fatalf("%s: %v", p.ID, err)
		}
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// Once the sandbox has decided every bid, one tracker run records them.
	deadline := time.Now().Add(time.Minute)
	for undecided(srv) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bids still undecided by the sandbox", undecided(srv))
		}
		time.Sleep(50 * time.Millisecond)
	}
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { _ = client.Close() })
	sh := scanner.NewScanHandler(rdb, client, led, map[string]marketplace.Adapter{mp: ad}, nil,
		scanner.WithTracker(scanner.TrackOptions{MaxBids: 2 * n}))
	sum, err := sh.Track(ctx, mp)
	if err != nil || sum.Result != scanner.TrackOK {
		t.Fatalf("track: %+v, %v", sum, err)
	}

	rep, err := report.Build(ctx, led, history.NewReader(rdb), []string{mp}, start.Add(-time.Minute), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	truth := map[string]marketplace.Outcome{}
	for _, b := range srv.BidOutcomes() {
		truth[b.PostingID] = b.Outcome
	}
	var want report.Counts
	wantBy := map[[2]string]*report.Counts{}
	for _, p := range postings {
		o, ok := truth[p.ID]
		if !ok {
			continue
		}
		d := eng.Dims(p)
		for i, v := range []string{d.Keyword, d.Band, d.Country, d.Strategy} {
			k := [2]string{report.Dimensions[i], v}
			if wantBy[k] == nil {
				wantBy[k] = &report.Counts{}
			}
			count(wantBy[k], o)
		}
		count(&want, o)
	}
	m := rep.Markets[0]
	got := m.Total
	if want.Bids < n/2 || want.Awarded == 0 || want.Rejected == 0 {
		t.Fatalf("the sandbox took %d bids, awarded %d, rejected %d: the test needs a mix", want.Bids, want.Awarded, want.Rejected)
	}
	if got.Bids != want.Bids || got.Awarded != want.Awarded || got.Rejected != want.Rejected || got.Pending != 0 || got.WinRate() != want.WinRate() {
		t.Fatalf("report %+v (win rate %.4f), the sandbox's truth %+v (%.4f)", got, got.WinRate(), want, want.WinRate())
	}
	t.Logf("%d postings, %d bids, win rate %.1f%% (the sandbox's truth %.1f%%), median to award %s",
		n, got.Bids, 100*got.WinRate(), 100*want.WinRate(), got.MedianToAward())
	if got.MedianToAward() < decideAfter-100*time.Millisecond || got.MedianToAward() > decideAfter+30*time.Second {
		t.Fatalf("median time to award %s, want about the sandbox's %s", got.MedianToAward(), decideAfter)
	}
	if len(m.Groups) != len(wantBy) {
		t.Fatalf("%d groups, want %d", len(m.Groups), len(wantBy))
	}
	for _, g := range m.Groups {
		w := wantBy[[2]string{g.Dimension, g.Value}]
		if w == nil || g.Bids != w.Bids || g.Awarded != w.Awarded || g.Rejected != w.Rejected {
			t.Fatalf("%s=%q: %+v, want %+v", g.Dimension, g.Value, g.Counts, w)
		}
	}
	if f := m.Funnel; f.Decided != n || f.Sent != int64(want.Bids) || f.Hired != int64(want.Awarded) || f.Replied != int64(want.Awarded+want.Rejected) || f.Matched < f.Sent {
		t.Fatalf("funnel %+v", f)
	}

	// The formats carry the same numbers.
	var buf bytes.Buffer
	if err := rep.Write(&buf, "json"); err != nil {
		t.Fatal(err)
	}
	var j struct {
		Markets []struct {
			Total struct {
				Bids    int      `json:"bids"`
				WinRate *float64 `json:"win_rate"`
			} `json:"total"`
		} `json:"marketplaces"`
	}
	if err := json.Unmarshal(buf.Bytes(), &j); err != nil || j.Markets[0].Total.Bids != want.Bids || *j.Markets[0].Total.WinRate != want.WinRate() {
		t.Fatalf("json: %v\n%s", err, buf.String())
	}
	buf.Reset()
	if err := rep.Write(&buf, "csv"); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) != 2+len(m.Groups) || rows[1][1] != "all" || rows[1][3] != itoa(want.Bids) {
		t.Fatalf("csv: %v %v", rows[:2], err)
	}
	buf.Reset()
	if err := rep.Write(&buf, "table"); err != nil || !strings.Contains(buf.String(), "win rate") {
		t.Fatalf("table: %v\n%s", err, buf.String())
	}
	if err := rep.Write(&buf, "xml"); err == nil {
		t.Fatal("an unknown format was accepted")
	}
}

func undecided(srv *sandbox.Server) int {
	n := 0
	for _, b := range srv.BidOutcomes() {
		if !b.Outcome.Decided() {
			n++
		}
	}
	return n
}

func count(c *report.Counts, o marketplace.Outcome) {
	c.Bids++
	switch o {
	case marketplace.OutcomeAwarded:
		c.Awarded++
	case marketplace.OutcomeRejected:
		c.Rejected++
	case marketplace.OutcomeRetracted:
		c.Retracted++
	default:
		c.Pending++
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// scanAll lists every posting the sandbox has published.
func scanAll(t *testing.T, ad marketplace.Adapter) []marketplace.Posting {
	t.Helper()
	var postings []marketplace.Posting
	for cursor := ""; ; {
		page, err := ad.Scan(context.Background(), cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		postings = append(postings, page.Postings...)
		if len(page.Postings) == 0 || page.NextCursor == cursor {
			return postings
		}
		cursor = page.NextCursor
	}
}
