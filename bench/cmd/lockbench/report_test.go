package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func res(impl string, g, round int, cycles int64, p50 time.Duration) result {
	return result{Impl: impl, Goroutines: g, Round: round, Cycles: cycles, Elapsed: time.Second, P50: p50, P99: 2 * p50}
}

func TestPickBestAndMedian(t *testing.T) {
	all := []result{
		res("bidder", 64, 1, 100, time.Millisecond),
		res("bidder", 64, 2, 300, time.Millisecond),
		res("bidder", 64, 3, 200, time.Millisecond),
		res("raw", 64, 1, 50, time.Millisecond),
		res("raw", 64, 2, 40, time.Millisecond),
	}
	best := pick(all, "best")
	if b, _ := find(best, "bidder", 64); b.Round != 2 {
		t.Errorf("best bidder round = %d, want 2", b.Round)
	}
	if r, _ := find(best, "raw", 64); r.Round != 1 {
		t.Errorf("best raw round = %d, want 1", r.Round)
	}
	med := pick(all, "median")
	if b, _ := find(med, "bidder", 64); b.Round != 3 {
		t.Errorf("median bidder round = %d, want 3 (200 of 100,200,300)", b.Round)
	}
	if r, _ := find(med, "raw", 64); r.Round != 2 {
		t.Errorf("median raw round = %d, want 2 (the slower of two)", r.Round)
	}
}

func TestTargets(t *testing.T) {
	rs := []result{
		res("bidder", 1, 1, 1000, 105*time.Microsecond),
		res("raw", 1, 1, 1100, 100*time.Microsecond),
		res("bidder", 64, 1, 900, time.Millisecond),
		res("raw", 64, 1, 1000, time.Millisecond),
		res("redislock", 64, 1, 901, time.Millisecond),
	}
	ts := targets(rs)
	want := []struct {
		value float64
		met   bool
	}{{0.9, true}, {900.0 / 901, false}, {1.05, true}}
	if len(ts) != len(want) {
		t.Fatalf("got %d targets", len(ts))
	}
	for i, w := range want {
		if !ts[i].Known || ts[i].Met != w.met || ts[i].Value < w.value-1e-9 || ts[i].Value > w.value+1e-9 {
			t.Errorf("%s = %.4f met=%v, want %.4f met=%v", ts[i].What, ts[i].Value, ts[i].Met, w.value, w.met)
		}
	}
	if ts := targets(rs[:2]); ts[0].Known || !ts[2].Known {
		t.Errorf("targets without the 64-goroutine cases: %+v", ts)
	}
}

func TestWriteTableRatios(t *testing.T) {
	rs := []result{
		res("bidder", 64, 1, 1000, time.Millisecond),
		res("raw", 64, 1, 2000, 500*time.Microsecond),
	}
	var buf bytes.Buffer
	writeTable(&buf, rs, []int{64}, []string{"bidder", "raw"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", buf.String())
	}
	// raw: twice bidder's cycles/s, so x/bidder 2.00, bidder/x 0.50, and
	// bidder's p50 is twice raw's.
	f := strings.Fields(lines[2])
	if f[0] != "raw" || f[2] != "2000" || f[5] != "2.00" || f[6] != "0.50" || f[7] != "2.00" {
		t.Errorf("raw row = %q", lines[2])
	}
}

func TestPercentiles(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i))
	}
	if p50, p99 := percentiles(lat); p50 != 50 || p99 != 99 {
		t.Errorf("p50, p99 = %d, %d; want 50, 99", p50, p99)
	}
	if p50, p99 := percentiles(nil); p50 != 0 || p99 != 0 {
		t.Errorf("empty: %d, %d", p50, p99)
	}
}

func TestParseProcStatCPU(t *testing.T) {
	// comm with a space and a ')' in it; utime=250, stime=50 ticks.
	stat := "1234 (redis server) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 5 0 100 0 0"
	got, err := parseProcStatCPU(stat)
	if err != nil || got != 3*time.Second {
		t.Errorf("got %v, %v; want 3s", got, err)
	}
	if _, err := parseProcStatCPU("garbage"); err == nil {
		t.Error("no error for garbage")
	}
}

func TestParseInfoCPU(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.750000\r\nused_cpu_sys_children:0.0\r\n"
	got, err := parseInfoCPU(info)
	if err != nil || got != 2*time.Second {
		t.Errorf("got %v, %v; want 2s", got, err)
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.duration != 3*time.Second || c.rounds != 2 || len(c.goroutines) != 2 || c.poolSize != 64 || len(c.impls) != 4 {
		t.Errorf("defaults: %+v", c)
	}
	if _, err := parseFlags([]string{"--redis-addr", "127.0.0.1:6379"}); err == nil {
		t.Error("the shared Redis on 6379 was accepted")
	}
	if c, err := parseFlags([]string{"--goroutines", "1,128"}); err != nil || c.poolSize != 128 {
		t.Errorf("pool size for 128 goroutines: %d, %v", c.poolSize, err)
	}
}
