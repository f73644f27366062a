package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RequireChromiumEnv turns "no chromium" from a skip into a failure (CI).
const requireChromiumEnv = "BIDDER_REQUIRE_CHROMIUM"

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(requireChromiumEnv) == "1" {
		t.Fatalf("chromium not found and %s=1", requireChromiumEnv)
	}
	t.Skip("chromium not found (apt-get install chromium); skipping the browser test")
	return ""
}

// headless runs Chromium the way it works on a closed network, as root.
func headless(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return out
}

var (
	placedCell = regexp.MustCompile(`<tr data-marketplace="sandbox">.*?<td data-metric="placed">([0-9.e+]+)</td>`)
	// asynqmon's queue table: the queue's link, its state, then its size.
	bidsQueueRow = regexp.MustCompile(`href="/monitoring/queues/bids(?::|%3A)sandbox">bids:sandbox</a></th><td[^>]*><span[^>]*>run</span></td><td[^>]*>([0-9]+)</td>`)
)

// TestStatusPageInBrowser renders the UI pages of an embedded `run` in a
// real headless Chromium: the status page's DOM must show bids actually
// placed and its screenshot must be a real rendering, not a blank page; the
// asynq web UI must render the bids queue with tasks in it.
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	emb, err := os.ReadFile("../../configs/embedded.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "bidder.yaml", strings.Replace(string(emb), "addr: 127.0.0.1:8080", "addr: 127.0.0.1:0", 1))
	p := start(t, dir, nil, "run")
	base := p.baseURL()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, m := get(t, base+"/metrics", "", ""); placed(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no bid placed within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}

	dom := headless(t, bin, "--dump-dom", base+"/")
	m := placedCell.FindSubmatch(bytes.ReplaceAll(dom, []byte("\n"), nil))
	if m == nil {
		t.Fatalf("rendered page has no placed count for sandbox:\n%.2000s", dom)
	}
	if n, err := strconv.ParseFloat(string(m[1]), 64); err != nil || n <= 0 {
		t.Fatalf("rendered placed count %q, want > 0", m[1])
	}

	shot := filepath.Join(dir, "status.png")
	headless(t, bin, "--window-size=1200,900", "--screenshot="+shot, base+"/")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	colours := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	// Text on a white page anti-aliases into dozens of greys; a blank or
	// error page has a handful of colours.
	if len(colours) < 20 {
		t.Fatalf("screenshot has %d colours: the page did not render", len(colours))
	}
	// The asynq web UI is a React app fed by its API: give its scripts
	// virtual time to fetch and render, then read the queue table.
	ui := headless(t, bin, "--virtual-time-budget=8000", "--dump-dom", base+"/monitoring/")
	q := bidsQueueRow.FindSubmatch(ui)
	if q == nil {
		t.Fatalf("asynqmon rendered no row for the bids:sandbox queue:\n%.3000s", ui)
	}
	if n, _ := strconv.Atoi(string(q[1])); n <= 0 {
		t.Fatalf("asynqmon shows bids:sandbox queue size %s, want > 0 (completed tasks are retained)", q[1])
	}

	if out := os.Getenv("BIDDER_SCREENSHOT_DIR"); out != "" {
		data, _ := os.ReadFile(shot)
		_ = os.WriteFile(filepath.Join(out, "status.png"), data, 0o644)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}
