//go:build linux

package app

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/bidder/bidder/internal/config"
)

// openPTY returns a pseudo-terminal: what a person's shell gives a process
// as stderr (the slave side), and the side a terminal emulator reads.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// firstLine logs one line with format f to w and returns what the reader
// side r shows.
func firstLine(t *testing.T, format string, w io.Writer, r io.Reader) string {
	t.Helper()
	log, err := NewLogger(config.Log{Level: "info", Format: format}, w)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		got <- line
	}()
	log.Info("hello", zap.String("k", "v"))
	select {
	case line := <-got:
		return line
	case <-time.After(5 * time.Second):
		t.Fatal("nothing logged")
		return ""
	}
}

func TestLogFormatFollowsTheTerminal(t *testing.T) {
	isJSON := func(s string) bool { return strings.HasPrefix(s, "{") && strings.Contains(s, `"msg":"hello"`) }
	isConsole := func(s string) bool {
		return !strings.HasPrefix(s, "{") && strings.Contains(s, "INFO") && strings.Contains(s, "hello")
	}

	pm, ps := openPTY(t)
	if line := firstLine(t, config.LogFormatAuto, ps, pm); !isConsole(line) {
		t.Errorf("auto on a terminal: %q, want the console format", line)
	}
	if line := firstLine(t, "json", ps, pm); !isJSON(line) {
		t.Errorf("json on a terminal: %q", line)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	if line := firstLine(t, config.LogFormatAuto, pw, pr); !isJSON(line) {
		t.Errorf("auto on a pipe: %q, want JSON", line)
	}
	if line := firstLine(t, "console", pw, pr); !isConsole(line) {
		t.Errorf("console on a pipe: %q", line)
	}
}
