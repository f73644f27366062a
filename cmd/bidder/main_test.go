package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	buildinfo "github.com/bidder/bidder/internal/version"
)

// syncBuffer is a bytes.Buffer the command and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"version"}, exitOK, ""},
		{nil, exitUsage, "no command given"},
		{[]string{"sandbx"}, exitUsage, `did you mean sandbox`},
		{[]string{"version", "extra"}, exitUsage, "unknown command"},
		{[]string{"sandbox", "--bogus"}, exitUsage, "--bogus"},
		{[]string{"sandbox", "--error-rate", "2"}, exitUsage, "--error-rate"},
		{[]string{"sandbox", "--idempotency", "maybe"}, exitUsage, "--idempotency"},
		{[]string{"sandbox", "stray"}, exitUsage, "stray"},
		{[]string{"sandbox", "--listen", "256.0.0.1:1"}, exitFailure, "256.0.0.1"},
	} {
		var stdout, stderr syncBuffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.stderr) {
			t.Errorf("bidder %v: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr syncBuffer
	if code := run(context.Background(), []string{"version"}, &stdout, &stderr); code != 0 || stdout.String() != buildinfo.Read(version).String() {
		t.Fatalf("exit %d, stdout %q", code, stdout.String())
	}
}

func TestSandboxServesUntilCancelled(t *testing.T) {
	const token = "very-secret-token"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"sandbox", "--listen", "127.0.0.1:0", "--tokens", token, "--postings", "5", "--idempotency", "off"}, &stdout, &stderr)
	}()

	// The listening address is only known from the log line.
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for url == "" {
		for _, line := range strings.Split(stderr.String(), "\n") {
			var entry struct {
				Msg    string         `json:"msg"`
				URL    string         `json:"url"`
				Config map[string]any `json:"config"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "sandbox marketplace listening" {
				if entry.Config["idempotency"] != "off" {
					t.Errorf("logged config %v lacks the mode", entry.Config)
				}
				url = entry.URL
			}
		}
		select {
		case code := <-exit:
			t.Fatalf("exited %d before listening: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening log line: %s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}

	req, _ := http.NewRequest("GET", url+"/v1/stats", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"postings":5`) {
		t.Fatalf("stats: %d %s", resp.StatusCode, body)
	}

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d after shutdown: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not shut down")
	}
	if strings.Contains(stderr.String(), token) {
		t.Fatalf("the token was logged: %s", stderr.String())
	}
}
