package chaos

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Proc is one long-lived role (a worker, a scanner, the sandbox, Redis) that
// the harness may kill and start again: each start is an incarnation with
// its own log file, <dir>/<name>.<n>.log.
type Proc struct {
	Name string
	Bin  string
	Args []string
	Env  []string
	Dir  string // log directory

	mu          sync.Mutex
	cmd         *exec.Cmd
	done        chan struct{}
	state       *os.ProcessState
	incarnation int
	stopped     bool // SIGSTOPped
}

// Start starts a new incarnation. It fails if one is running.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: already running", p.Name)
		}
	}
	p.incarnation++
	f, err := os.Create(filepath.Join(p.Dir, fmt.Sprintf("%s.%d.log", p.Name, p.incarnation)))
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group, so a Ctrl-C on the harness does not race its own
	// signals; the harness ends every child itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.state, p.stopped = cmd, done, nil, false
	go func() {
		_ = cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Pid of the running incarnation (0 if none).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exitedLocked() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Incarnation is how many times the role was started.
func (p *Proc) Incarnation() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.incarnation
}

func (p *Proc) exitedLocked() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Running reports whether the current incarnation is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.exitedLocked()
}

// Stopped reports whether the running incarnation was SIGSTOPped and not
// continued since (a request to it would hang until its timeout).
func (p *Proc) Stopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped && p.cmd != nil && !p.exitedLocked()
}

// Signal sends sig to the running incarnation.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exitedLocked() {
		return fmt.Errorf("%s: not running", p.Name)
	}
	if sig == syscall.SIGSTOP {
		p.stopped = true
	}
	if sig == syscall.SIGCONT {
		p.stopped = false
	}
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() {
	if p.Signal(syscall.SIGKILL) == nil {
		p.Wait(10 * time.Second)
	}
}

// Wait waits up to d for the current incarnation to exit and returns its
// state (nil if it is still running).
func (p *Proc) Wait(d time.Duration) *os.ProcessState {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
	case <-time.After(d):
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Terminate sends SIGCONT (a stopped process cannot handle SIGTERM) and
// SIGTERM, waits up to d, and reports how the process exited. A process
// that did not exit in time is killed and reported as such.
func (p *Proc) Terminate(d time.Duration) (code int, err error) {
	if !p.Running() {
		st := p.Wait(0)
		if st == nil {
			return -1, fmt.Errorf("%s: never started", p.Name)
		}
		return st.ExitCode(), fmt.Errorf("%s: had already exited before SIGTERM: %s", p.Name, st)
	}
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Signal(syscall.SIGTERM)
	st := p.Wait(d)
	if st == nil {
		p.Kill()
		return -1, fmt.Errorf("%s: still running %s after SIGTERM; killed", p.Name, d)
	}
	if !st.Exited() || st.ExitCode() != 0 {
		return st.ExitCode(), fmt.Errorf("%s: exit after SIGTERM: %s", p.Name, st)
	}
	return 0, nil
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP waits until addr accepts connections.
func waitTCP(addr string, d time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if exited != nil {
			select {
			case <-exited:
				return errors.New("process exited while starting")
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %s: %w", addr, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Proc) exitedChan() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

func itoa(i int) string { return strconv.Itoa(i) }
