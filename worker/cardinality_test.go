package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/worker"
)

// TestJunkTaskTypesShareOneSeries: task types come from Redis, where anyone
// with write access (or a fleet running other software) can put anything.
// Through a real asynq server, 40 junk types, some sharing the bid type's
// prefix (asynq's mux matches by prefix), must not grow the task metrics
// past the known types plus "other".
func TestJunkTaskTypesShareOneSeries(t *testing.T) {
	e := newEnv(t, nil)
	reg := prometheus.NewRegistry()
	e.serve(t, worker.NewMetrics(reg), zaptest.NewLogger(t))

	client := asynq.NewClientFromRedisClient(e.rdb)
	const junk = 40
	for i := range junk {
		typ := fmt.Sprintf("junk-%d", i)
		if i%2 == 1 {
			typ = worker.TypeBid + fmt.Sprintf(":junk-%d", i) // reaches the bid handler by prefix
		}
		if _, err := client.Enqueue(asynq.NewTask(typ, []byte(`{}`)), asynq.Queue(worker.QueueBids), asynq.MaxRetry(0)); err != nil {
			t.Fatal(err)
		}
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	wait.Until(t, 20*time.Second, "every junk task archived", func() bool {
		qi, err := insp.GetQueueInfo(worker.QueueBids)
		return err == nil && qi.Archived == junk
	})

	// The middleware counts after the handler returns, asynq archives after
	// that: poll the metric, not the queue.
	wait.Until(t, 5*time.Second, "every junk task counted", func() bool {
		return counterSum(t, reg, "bidder_tasks_total") == junk
	})

	types := map[string]bool{}
	for _, name := range []string{"bidder_tasks_total", "bidder_task_duration_seconds"} {
		for _, l := range labelValues(t, reg, name, "type") {
			types[l] = true
		}
	}
	for typ := range types {
		if typ != worker.TypeBid && typ != "other" {
			t.Errorf("task metrics carry type label %q; want only %q and \"other\"", typ, worker.TypeBid)
		}
	}
	if !types["other"] {
		t.Errorf("junk tasks not counted as \"other\": types %v", types)
	}
}

// serve runs a worker server with the standard mux over e until the test
// ends, logging to log.
func (e *env) serve(t *testing.T, m *worker.Metrics, log *zap.Logger) {
	t.Helper()
	h, locks := e.handler(t, nil)
	srv := worker.NewServer(e.rdb, worker.ServerConfig{Concurrency: 4, PollInterval: 50 * time.Millisecond, Logger: log}, locks)
	if err := srv.Start(worker.NewMux(h, m, log)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
}

// counterSum adds up every series of one counter family.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return int(n)
}

func labelValues(t *testing.T, reg *prometheus.Registry, name, label string) []string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					out = append(out, lp.GetValue())
				}
			}
		}
	}
	return out
}
