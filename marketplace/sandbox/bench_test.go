package sandbox

import (
	"context"
	"testing"

	"github.com/bidder/bidder/marketplace"
)

// Round trips of the adapter against the server over loopback HTTP:
//
//	go test -run XXX -bench . -benchmem ./marketplace/sandbox

func BenchmarkPlaceBid(b *testing.B) {
	s, hs := startServer(b, ServerConfig{Postings: b.N})
	a := newTestAdapter(b, hs.URL, testToken, 0)
	bids := make([]marketplace.Bid, b.N)
	for i := range b.N {
		bids[i] = bidFor(b, s, a, postingID(uint64(i+1)))
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := a.PlaceBid(ctx, postingID(uint64(i+1)), bids[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlaceBidParallel is the load of many workers sharing one adapter.
func BenchmarkPlaceBidParallel(b *testing.B) {
	s, hs := startServer(b, ServerConfig{Postings: 1, Idempotency: IdempotencyOff, Duplicates: DuplicatesAccept})
	a := newTestAdapter(b, hs.URL, testToken, 0)
	bid := bidFor(b, s, a, "p-000001")
	ctx := context.Background()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.PlaceBid(ctx, "p-000001", bid); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkScan reads 100-posting pages; ns/op is per page.
func BenchmarkScan(b *testing.B) {
	_, hs := startServer(b, ServerConfig{Postings: 10_000})
	a := newTestAdapter(b, hs.URL, testToken, 0)
	ctx := context.Background()
	cursor := ""
	b.ResetTimer()
	for range b.N {
		page, err := a.Scan(ctx, cursor, 100)
		if err != nil {
			b.Fatal(err)
		}
		if len(page.Postings) == 0 {
			cursor = "" // wrap around
			continue
		}
		cursor = page.NextCursor
	}
}
