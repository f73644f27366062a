package worker_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/internal/app"
	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/textsafe"
	"github.com/bidder/bidder/internal/wait"
	"github.com/bidder/bidder/worker"
)

// TestAsynqLogLinesEscaped: asynq logs task IDs, which anyone who can write
// to Redis chooses, through the sugared logger the worker hands it. With
// the process logger (console, as on a terminal) its lines must not carry
// the ID's escape sequences.
func TestAsynqLogLinesEscaped(t *testing.T) {
	e := newEnv(t, nil)
	// A file, not a buffer: asynq's goroutines write while the test reads.
	out, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	logged := func() string {
		b, err := os.ReadFile(out.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	log, err := app.NewLogger(config.Log{Level: "info", Format: "console"}, out)
	if err != nil {
		t.Fatal(err)
	}
	e.serve(t, worker.NewMetrics(nil), log)

	const id = "t-\x1b[2J\x1b]0;owned\x07\r\nconfig OK \u202eevil\u009b31m"
	client := asynq.NewClientFromRedisClient(e.rdb)
	if _, err := client.Enqueue(asynq.NewTask("junk", nil), asynq.TaskID(id), asynq.Queue(worker.QueueBids), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 20*time.Second, "asynq logs the exhausted task", func() bool {
		return strings.Contains(logged(), "Retry exhausted for task id=t-")
	})

	for _, line := range strings.Split(strings.TrimSuffix(logged(), "\n"), "\n") {
		if !textsafe.Clean(strings.ReplaceAll(line, "\t", "")) {
			t.Errorf("log line with control characters: %q", line)
		}
	}
}
