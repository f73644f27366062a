package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests build the binary and run it as an operator would.

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bidder-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "bidder")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	stdout *syncBuffer
	done   chan struct{}
	code   int
}

// start runs the binary in dir with only the given environment (plus PATH
// and HOME), so the developer's REDIS_URL cannot leak into a test.
func start(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	p := &proc{t: t, cmd: cmd, stderr: &syncBuffer{}, stdout: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr, cmd.Stdout = p.stderr, p.stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("bidder %v stderr:\n%s", args, p.stderr.String())
		}
	})
	return p
}

// wait returns the exit code, failing the test after d.
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		p.t.Fatalf("%v still running after %s", p.cmd.Args, d)
		return -1
	}
}

// baseURL reads the HTTP address from the "bidder starting" log line.
func (p *proc) baseURL() string {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			var e struct {
				Msg    string `json:"msg"`
				Status string `json:"status_page"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "bidder starting" {
				return strings.TrimSuffix(e.Status, "/")
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("exited %d before serving", p.code)
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.t.Fatal("no 'bidder starting' log line")
	return ""
}

func get(t *testing.T, url, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// minimalMarketplace is a config with one valid marketplace (token in TOK)
// that is never contacted.
const minimalMarketplace = `
marketplaces:
  - id: mp1
    adapter: sandbox
    base_url: http://127.0.0.1:9
    token_env: TOK
    rules:
      amount: {fixed: {strategy: fixed, amount: 100}}
      proposal: {template: "hi"}
`

func TestBinaryBadConfig(t *testing.T) {
	mp := minimalMarketplace
	dir := t.TempDir()
	for _, c := range []struct {
		name, doc string
		want      string
	}{
		{"unknown key", "redis: {hots: x}\n", "config: redis.hots: unknown key"},
		{"wrong type", "worker: {concurrency: many}\n", `config: worker.concurrency: want an integer, got "many"`},
		{"bad duration", "lock: {ttl: soon}\n", `config: lock.ttl: invalid duration "soon"`},
		{"bad cron", mp + "    scan: {schedule: \"* *\"}\n", `config: marketplaces[0].scan.schedule: bad cron spec "* *"`},
		{"missing secret", strings.Replace(mp, "TOK", "NOT_SET_ANYWHERE", 1), "config: marketplaces[0].token_env: environment variable NOT_SET_ANYWHERE is not set"},
		{"unknown adapter", strings.Replace(mp, "adapter: sandbox", "adapter: fiverr", 1), `config: marketplaces[0].adapter: unknown adapter "fiverr"`},
		{"bad id", strings.Replace(mp, "id: mp1", "id: MP.1", 1), "config: marketplaces[0].id:"},
		{"bad rules", strings.Replace(mp, "amount: 100", "amount: -1", 1), "config: marketplaces[0].rules.amount.fixed.amount:"},
		{"remote ui", "http: {addr: \"0.0.0.0:0\"}\n", "config: http.monitoring: refusing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(c.name, " ", "_")+".yaml", c.doc)
			p := start(t, dir, []string{"TOK=x"}, "run", "--config", path)
			code := p.wait(10 * time.Second)
			lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
			if code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "bidder: "+c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line starting %q", code, p.stderr.String(), "bidder: "+c.want)
			}
		})
	}
}
