package worker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/worker"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAsynqLogLinesEscaped: asynq logs task IDs, which anyone who can write
// to Redis chooses, through the sugared logger the worker hands it. With
// the process logger (console, as on a terminal) its lines must not carry
// the ID's escape sequences.
func TestAsynqLogLinesEscaped(t *testing.T) {
	e := newEnv(t, nil)
	h, locks := e.handler(t, nil)
	var out lockedBuffer
	log, err := app.NewLogger(config.Log{Level: "info", Format: "console"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	srv := worker.NewServer(e.rdb, worker.ServerConfig{Concurrency: 2, PollInterval: 50 * time.Millisecond, Logger: log}, locks)
	if err := srv.Start(worker.NewMux(h, worker.NewMetrics(nil), log)); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	const id = "t-\x1b[2J\x1b]0;owned\x07\r\nconfig OK \u202eevil\u009b31m"
	client := asynq.NewClientFromRedisClient(e.rdb)
	if _, err := client.Enqueue(asynq.NewTask("junk", nil), asynq.TaskID(id), asynq.Queue(worker.QueueBids), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "asynq logs the exhausted task", func() bool {
		return strings.Contains(out.String(), "Retry exhausted for task id=t-")
	})
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if !textsafe.Clean(strings.ReplaceAll(line, "\t", "")) {
			t.Errorf("log line with control characters: %q", line)
		}
	}
}
