package main

import (
	"context"
	"os/exec"
	"strconv"
	"testing"
)

// go test -run '^$' -bench Cycle -benchmem ./cmd/lockbench
//
// One op = one acquire+release cycle of a fresh posting, one goroutine.
// ns/op is as noisy as the machine; allocs/op and B/op are not, and show
// the client-side cost each implementation adds on top of go-redis.
func BenchmarkCycle(b *testing.B) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		b.Skip("redis-server not installed")
	}
	s, err := startServer("")
	if err != nil {
		b.Fatal(err)
	}
	defer s.stop()
	ctx := context.Background()
	for _, im := range allImpls {
		b.Run(im.name, func(b *testing.B) {
			rdb := newClient(s.addr, 64)
			defer rdb.Close()
			cycle := im.setup(rdb)
			if err := cycle(ctx, "warm"); err != nil { // loads the scripts
				b.Fatal(err)
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n++
				if err := cycle(ctx, im.name+"-"+strconv.Itoa(n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
