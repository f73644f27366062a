package chaos

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The pieces the load command (test/chaos/cmd/load) shares with the chaos
// harness, exported so that a command can drive processes the same way.

// NewRedisProc returns a redis-server role on port (not started).
func NewRedisProc(bin, dataDir, logDir string, port int, persist bool) *Proc {
	return newRedisProc(bin, dataDir, logDir, port, persist)
}

// StartRedis starts a redis role and waits for PING.
func StartRedis(p *Proc, addr string) error { return startRedis(p, addr) }

// NewSandboxProc returns the sandbox role (run by self, see RunRole) with
// the given `bidder sandbox` flags, strict mode, token SandboxToken.
func NewSandboxProc(self, logDir, name string, args ...string) *Proc {
	args = append([]string{"--tokens", SandboxToken, "--idempotency", "off", "--duplicates", "accept"}, args...)
	return &Proc{Name: name, Bin: self, Dir: logDir,
		Env: []string{RoleEnv + "=sandbox", RoleArgsEnv + "=" + strings.Join(args, "\x1f")}}
}

// NewNoopWorkerProc returns the no-op asynq worker role.
func NewNoopWorkerProc(self, logDir, name, redisAddr string, concurrency int) *Proc {
	return &Proc{Name: name, Bin: self, Dir: logDir,
		Env: []string{RoleEnv + "=noop-worker", RoleArgsEnv + "=" + redisAddr + "\x1f" + itoa(concurrency)}}
}

// NewNaiveWorkerProc is the naive handler (runNaiveWorker) as a process.
func NewNaiveWorkerProc(self, logDir, name, redisAddr, sandboxURL string, concurrency int) *Proc {
	return &Proc{Name: name, Bin: self, Dir: logDir,
		Env: []string{RoleEnv + "=naive-worker", RoleArgsEnv + "=" + redisAddr + "\x1f" + itoa(concurrency) + "\x1f" + sandboxURL}}
}

// WaitTCP waits until addr accepts connections or p exits.
func WaitTCP(p *Proc, addr string, d time.Duration) error { return waitTCP(addr, d, p.exitedChan()) }

// SandboxToken is the bearer token of harness-started sandboxes.
const SandboxToken = sandboxToken

// BidderYAML writes a worker config for the sandbox at sandboxURL with the
// chaos run's settings of cfg, and returns its path.
func BidderYAML(cfg Config, dir, sandboxURL string) (string, error) {
	cfg.defaults()
	p := filepath.Join(dir, "bidder.yaml")
	return p, os.WriteFile(p, []byte(cfg.bidderYAML([]string{marketplaceMain}, map[string]string{marketplaceMain: sandboxURL})), 0o644)
}

// BidderEnv is the environment a bidder process of the harness gets.
func BidderEnv(redisAddr string) []string {
	return []string{"REDIS_URL=redis://" + redisAddr + "/0", "BIDDER_CHAOS_SANDBOX_TOKEN=" + sandboxToken}
}

// Monitor counts the commands Redis executes (MONITOR), by name, split into
// top-level calls and calls made from inside Lua scripts. Commands from
// connections whose address is in skip are ignored.
type Monitor struct {
	conn     net.Conn
	done     chan struct{}
	TopLevel map[string]int
	FromLua  map[string]int
	skip     map[string]bool
}

// StartMonitor opens a MONITOR connection to addr.
func StartMonitor(addr string, skip ...string) (*Monitor, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte("MONITOR\r\n")); err != nil {
		c.Close()
		return nil, err
	}
	m := &Monitor{conn: c, done: make(chan struct{}), TopLevel: map[string]int{}, FromLua: map[string]int{}, skip: map[string]bool{}}
	for _, s := range skip {
		m.skip[s] = true
	}
	r := bufio.NewReaderSize(c, 1<<20)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "+OK") {
		c.Close()
		return nil, fmt.Errorf("MONITOR: %q %v", line, err)
	}
	go func() {
		defer close(m.done)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			// +1700000000.123456 [0 127.0.0.1:5555] "evalsha" "..." ...
			open, close := strings.IndexByte(line, '['), strings.IndexByte(line, ']')
			if open < 0 || close < open {
				continue
			}
			src := line[open+1 : close]
			_, client, _ := strings.Cut(src, " ")
			rest := strings.TrimSpace(line[close+1:])
			name, _, _ := strings.Cut(rest, " ")
			name = strings.ToLower(strings.Trim(name, `"`))
			if client == "lua" {
				m.FromLua[name]++
			} else if !m.skip[client] {
				m.TopLevel[name]++
			}
		}
	}()
	return m, nil
}

// Stop ends the MONITOR session; the counts are final afterwards.
func (m *Monitor) Stop() {
	m.conn.Close()
	<-m.done
}

// Total sums a count map.
func Total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// VmRSS reads a process's resident set size in KiB from /proc.
func VmRSS(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb
		}
	}
	return 0
}
