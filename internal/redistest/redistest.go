// Package redistest starts real redis-server processes for tests: each on a
// free loopback port with its own data directory, so tests never touch the
// machine's shared Redis. A test can stop, kill (SIGKILL) and restart its
// server, which is how lock loss and Redis failure are tested for real.
//
// When redis-server is not installed the test is skipped with a message,
// unless BIDDER_REQUIRE_REDIS=1 (as in CI), when it fails instead.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireEnv is the environment variable that turns "redis-server missing"
// from a skip into a failure.
const RequireEnv = "BIDDER_REQUIRE_REDIS"

// Option configures a Server.
type Option func(*config)

type config struct {
	appendOnly bool
	fsync      string
	password   string
	args       []string
	tls        *TLSFiles
	sentinel   *sentinelConf
	cluster    bool
	replicaOf  *Server
}

// WithPassword starts the server with requirepass; Client and the readiness
// check authenticate with it.
func WithPassword(pw string) Option {
	return func(c *config) { c.password = pw }
}

// WithAppendOnly turns on AOF persistence with the given appendfsync policy
// ("always", "everysec", "no"), so Restart after Kill recovers the data.
func WithAppendOnly(fsync string) Option {
	return func(c *config) { c.appendOnly = true; c.fsync = fsync }
}

// WithArgs passes extra redis-server arguments, e.g. "--maxmemory", "10mb".
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cfg  config

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Port is the port the server listens on (its TLS port with WithTLS).
func (s *Server) Port() int { return s.port }

// Binary returns the redis-server path, or skips/fails the test when there is
// none.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("REDIS_SERVER_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("redis-server")
	if err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server"
	}
	msg := "redis-server not found on PATH: this test needs a real Redis (apt-get install redis-server)"
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s, and %s=1 forbids skipping", msg, RequireEnv)
	}
	t.Skip(msg + "; skipping (set " + RequireEnv + "=1 to make this a failure)")
	return ""
}

// Start launches a redis-server on a free port and stops it when the test
// ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir()}
	for _, o := range opts {
		o(&s.cfg)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.port, err = freePort()
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	t.Cleanup(s.Kill)
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is a redis:// URL for the server.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Dir is the server's data directory (AOF, RDB, log).
func (s *Server) Dir() string { return s.dir }

// Client returns a go-redis client for the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(s.Options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Options are go-redis options reaching the server as the admin (default
// user, its password, TLS with the test CA and client certificate).
func (s *Server) Options() *redis.Options {
	o := &redis.Options{Addr: s.Addr(), Password: s.cfg.password}
	if s.cfg.tls != nil {
		o.TLSConfig = s.cfg.tls.ClientConfig()
	}
	return o
}

func (s *Server) args() []string {
	if s.cfg.sentinel != nil {
		return s.sentinelArgs()
	}
	port := []string{"--port", strconv.Itoa(s.port)}
	if t := s.cfg.tls; t != nil {
		port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", t.ServerCert, "--tls-key-file", t.ServerKey, "--tls-ca-cert-file", t.CA,
			"--tls-auth-clients", t.authClients()}
	}
	a := append(port,
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--daemonize", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--protected-mode", "no",
		// A replica's first sync starts at once, not after 5s.
		"--repl-diskless-sync-delay", "0",
	)
	if s.cfg.cluster {
		a = append(a, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", "1500", "--cluster-require-full-coverage", "no")
	}
	if m := s.cfg.replicaOf; m != nil {
		a = append(a, "--replicaof", "127.0.0.1", strconv.Itoa(m.port))
		if m.cfg.password != "" {
			a = append(a, "--masterauth", m.cfg.password)
		}
	}
	if s.cfg.password != "" {
		a = append(a, "--requirepass", s.cfg.password)
	}
	if s.cfg.appendOnly {
		a = append(a, "--appendonly", "yes", "--appendfsync", s.cfg.fsync)
	} else {
		a = append(a, "--appendonly", "no")
	}
	return append(a, s.cfg.args...)
}

func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args()...)
	// Own process group: a SIGINT to `go test` must not race our own Kill.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	o := s.Options()
	if err := waitReady(o, exited, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("%w (log: %s)", err, s.logTail())
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	// Keep the reaper: Stop/Kill wait on it through the process handle.
	go func() { <-exited }()
	return nil
}

func waitReady(o *redis.Options, exited <-chan error, timeout time.Duration) error {
	addr := o.Addr
	o.MaxRetries, o.DialTimeout = -1, 200*time.Millisecond
	c := redis.NewClient(o)
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited at start: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		// AOF loading answers LOADING; keep waiting.
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s not ready after %s: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL: no shutdown save, in-flight replies lost. It waits until
// the port is free. Safe to call when already stopped.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop shuts the server down cleanly (SIGTERM).
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Wait for the listener to go away so a Restart can bind the same port.
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.Addr(), 50*time.Millisecond)
		if err != nil {
			return
		}
		_ = c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts the server again on the same port and data directory (with
// AOF on, data written before a Kill comes back).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart redis-server on %s: %v", s.Addr(), err)
}

// Pid is the redis-server process ID (0 when stopped), for tests and
// benchmarks that read its CPU time from /proc.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

func (s *Server) logTail() string {
	f, err := os.Open(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return "no log"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 10 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}
