package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Every implementation completes cycles on fresh postings against a private
// redis-server, and leaves no lock key behind.
func TestImplsAgainstRealRedis(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	s, err := startServer("")
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	ctx := context.Background()
	for _, im := range allImpls {
		rdb := newClient(s.addr, 4)
		cycle := im.setup(rdb)
		for i := range 20 {
			if err := cycle(ctx, im.name+"-"+strconv.Itoa(i)); err != nil {
				t.Fatalf("%s: cycle %d: %v", im.name, i, err)
			}
		}
		n, err := rdb.Exists(ctx, keys.Lock(marketplace, im.name+"-0")).Result()
		if err != nil || n != 0 {
			t.Errorf("%s: lock key left behind (%d, %v)", im.name, n, err)
		}
		rdb.Close()
	}
	cpu, err := procCPU(s.pid())
	if err != nil || cpu < 0 {
		t.Errorf("server cpu: %v, %v", cpu, err)
	}
	b := &bench{cfg: config{warmup: 0}}
	lat, errs, _, elapsed := b.load(ctx, func(context.Context, string) error { time.Sleep(time.Millisecond); return nil }, 3, "x", 50*time.Millisecond)
	if errs != 0 || len(lat) < 3 || elapsed < 50*time.Millisecond {
		t.Errorf("load: %d cycles, %d errors, %v", len(lat), errs, elapsed)
	}
}

// raw+fence must keep running bidder's own acquire script.
func TestFencedAcquireMatchesLock(t *testing.T) {
	b, err := os.ReadFile("../../../lock/scripts/acquire.lua")
	if err != nil {
		t.Skip("lock/scripts/acquire.lua not found:", err)
	}
	var code []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, "--") {
			code = append(code, line)
		}
	}
	if got := redis.NewScript(strings.Join(code, "\n")).Hash(); got != fencedAcquire.Hash() {
		t.Errorf("fencedAcquire differs from lock/scripts/acquire.lua; copy it again")
	}
}
