package app

import (
	"context"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/redisconn"
	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// TestSummaryLines: one line per marketplace per tick, counters as their
// growth since the last line, the budget as it is now.
func TestSummaryLines(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	snaps := []map[string]Snapshot{
		{"a": {Placed: 10, Skipped: 5}, "b": {Budgets: []BudgetLeft{{Hour: 7, Day: -1}}}, "c": {}},
		{"a": {Placed: 13, Skipped: 5, Failed: 1}, "b": {Placed: 2, Budgets: []BudgetLeft{{Hour: 5, Day: -1}}},
			"c": {Budgets: []BudgetLeft{{Account: "alice", Hour: 0, Day: 9}, {Account: "bob", Err: "redis down"}}}},
		{"a": {Placed: 13, Skipped: 9, Failed: 1}, "b": {Placed: 2, Budgets: []BudgetLeft{{Err: "redis down"}}}, "c": {}},
	}
	i := 0
	s := &summarizer{log: zap.New(core), every: 30 * time.Second, ids: []string{"a", "b", "c"},
		source: func(context.Context) map[string]Snapshot { i++; return snaps[i-1] }}
	s.prev = s.source(context.Background())
	s.tick(context.Background())
	s.tick(context.Background())

	type line = map[string]any
	want := []line{
		{"marketplace": "a", "placed": int64(3), "skipped": int64(0), "failed": int64(1)},
		{"marketplace": "b", "placed": int64(2), "skipped": int64(0), "failed": int64(0), "budget_hour_left": int64(5)},
		// agency mode: one object per account's budget
		{"marketplace": "c", "placed": int64(0), "skipped": int64(0), "failed": int64(0), "budgets": []any{
			map[string]any{"account": "alice", "hour_left": int64(0), "day_left": int64(9)},
			map[string]any{"account": "bob", "error": "redis down"}}},
		{"marketplace": "a", "placed": int64(0), "skipped": int64(4), "failed": int64(0)},
		{"marketplace": "b", "placed": int64(0), "skipped": int64(0), "failed": int64(0), "budget_error": "redis down"},
		{"marketplace": "c", "placed": int64(0), "skipped": int64(0), "failed": int64(0)},
	}
	got := logs.FilterMessage("summary").All()
	if len(got) != len(want) {
		t.Fatalf("%d summary lines, want %d", len(got), len(want))
	}
	for n, e := range got {
		f := e.ContextMap()
		delete(f, "interval")
		if len(f) != len(want[n]) {
			t.Errorf("line %d: %v, want %v", n, f, want[n])
			continue
		}
		for k, v := range want[n] {
			if !reflect.DeepEqual(f[k], v) {
				t.Errorf("line %d: %s = %v (%T), want %v; line %v", n, k, f[k], f[k], v, f)
			}
		}
	}
}

// TestSnapshotsFromMetricsAndBudget: the numbers come from the
// bidder_bids_total series of the process registry and the budget keys in
// a real Redis.
func TestSnapshotsFromMetricsAndBudget(t *testing.T) {
	rs := redistest.Start(t)
	conn, err := redisconn.Open(config.Config{Redis: config.Redis{URL: rs.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reg := prometheus.NewRegistry()
	bids := prometheus.NewCounterVec(prometheus.CounterOpts{Name: worker.MetricBids, Help: "h"}, []string{"marketplace", "outcome"})
	reg.MustRegister(bids)
	bids.WithLabelValues("a", worker.OutcomePlaced).Add(4)
	bids.WithLabelValues("a", worker.OutcomeSkipped).Add(2)
	bids.WithLabelValues("b", worker.OutcomeFailed).Add(1)
	bids.WithLabelValues("b", worker.OutcomeDryRun).Add(9)

	budget := rules.NewBudget(conn.Client, "", 10, 0)
	ctx := context.Background()
	for i := range 3 {
		if ok, _, err := budget.Take(ctx, "b", "p"+strconv.Itoa(i), time.Now()); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	a := &App{Log: zap.NewNop(), Registry: reg, Conn: conn,
		Markets: map[string]worker.Marketplace{"a": {}, "b": {Budget: budget}}}
	got := a.snapshots(ctx)
	if s := got["a"]; s.Placed != 4 || s.Skipped != 2 || s.Failed != 0 || len(s.Budgets) != 0 {
		t.Errorf("a: %+v", s)
	}
	if s := got["b"]; s.Placed != 0 || s.Failed != 1 || len(s.Budgets) != 1 || s.Budgets[0] != (BudgetLeft{Hour: 7, Day: -1}) {
		t.Errorf("b: %+v", s)
	}
}
