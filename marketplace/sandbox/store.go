package sandbox

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// storedPosting is immutable once published; readers share it without locks.
type storedPosting struct {
	seq         uint64
	publishedAt time.Time
	p           wirePosting // ID, content and PostedAt; URL and Status are per answer
}

// postingStore is append-only: index i holds sequence number i+1.
type postingStore struct {
	mu   sync.RWMutex
	all  []*storedPosting
	byID map[string]*storedPosting
}

// publish appends n postings stamped with now and returns their IDs.
func (ps *postingStore) publish(seed uint64, n int, now time.Time) []string {
	ids := make([]string, 0, n)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	// Publication times never go backwards, even if the clock does, because
	// "first open posting" is found by binary search on them.
	if k := len(ps.all); k > 0 && now.Before(ps.all[k-1].publishedAt) {
		now = ps.all[k-1].publishedAt
	}
	for range n {
		seq := uint64(len(ps.all)) + 1
		p := generatePosting(seed, seq)
		p.PostedAt = now.UTC()
		sp := &storedPosting{seq: seq, publishedAt: now, p: p}
		ps.all = append(ps.all, sp)
		ps.byID[p.ID] = sp
		ids = append(ids, p.ID)
	}
	return ids
}

func (ps *postingStore) get(id string) (*storedPosting, bool) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	sp, ok := ps.byID[id]
	return sp, ok
}

func (ps *postingStore) count() int {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return len(ps.all)
}

// firstOpen is the index of the oldest posting still open at now; every
// posting after it is open too because all close the same time after
// publication.
func (ps *postingStore) firstOpen(now time.Time, closeAfter time.Duration) int {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	return ps.firstOpenLocked(now, closeAfter)
}

func (ps *postingStore) firstOpenLocked(now time.Time, closeAfter time.Duration) int {
	if closeAfter <= 0 {
		return 0
	}
	return sort.Search(len(ps.all), func(i int) bool {
		return now.Before(ps.all[i].publishedAt.Add(closeAfter))
	})
}

// page returns up to limit postings after sequence number after (nil cursor
// means from the oldest open one) and the sequence number to continue from.
func (ps *postingStore) page(after *uint64, limit int, now time.Time, closeAfter time.Duration) ([]*storedPosting, uint64, error) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	var start uint64
	if after == nil {
		start = uint64(ps.firstOpenLocked(now, closeAfter))
	} else {
		start = *after
		if start > uint64(len(ps.all)) {
			return nil, 0, fmt.Errorf("%w: it is ahead of the newest posting", errBadCursor)
		}
	}
	end := min(start+uint64(limit), uint64(len(ps.all)))
	// A copy, so the caller encodes without holding the lock while publish appends.
	out := append([]*storedPosting(nil), ps.all[start:end]...)
	return out, end, nil
}

// postingBids is what one posting got.
type postingBids struct {
	total     int
	byAccount map[string][]*wireBid
	maxFence  int64
}

type idemKey struct{ account, key string }

// bidOutcome says which row of the contract's table a bid attempt hit.
type bidOutcome int

const (
	bidCreated bidOutcome = iota
	bidReplayed
	bidDuplicate
	bidClosed
)

// bidStore decides every bid under one mutex: the replay check, the duplicate
// check and the creation must be one step, or two concurrent attempts with
// one key could both create a bid.
type bidStore struct {
	mu        sync.Mutex
	nextID    uint64
	byPosting map[string]*postingBids
	byKey     map[idemKey]*wireBid
	stats     Stats // Postings, OpenPostings and outcome counts are filled in by Server.Stats
	// Every created bid, by ID and in creation order (outcomes.go).
	byID    map[string]*bidRecord
	records []*bidRecord
}

type bidAttempt struct {
	account          string
	postingID        string
	key              string
	req              wireBidRequest
	closed           bool
	honourKeys       bool
	rejectDuplicates bool
	now              time.Time
}

// place applies a validated attempt and returns the outcome and the bid to
// answer with (a copy: the stored one stays private to the store).
func (bs *bidStore) place(a bidAttempt) (bidOutcome, wireBid) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if a.honourKeys {
		if b, ok := bs.byKey[idemKey{a.account, a.key}]; ok {
			bs.stats.IdempotentReplays++
			return bidReplayed, *b
		}
	}
	// A replay of a bid made before the posting closed still gets its
	// original answer; only new bids are refused.
	if a.closed {
		return bidClosed, wireBid{}
	}
	pb := bs.byPosting[a.postingID]
	if pb == nil {
		pb = &postingBids{byAccount: map[string][]*wireBid{}}
		bs.byPosting[a.postingID] = pb
	}
	mine := pb.byAccount[a.account]
	if len(mine) > 0 && a.rejectDuplicates {
		bs.stats.RejectedDuplicates++
		return bidDuplicate, *mine[0]
	}
	bs.nextID++
	b := &wireBid{
		ID:             fmt.Sprintf("b-%08d", bs.nextID),
		PostingID:      a.postingID,
		Amount:         a.req.Amount,
		Currency:       a.req.Currency,
		Proposal:       a.req.Proposal,
		FencingToken:   a.req.FencingToken,
		IdempotencyKey: a.key,
		CreatedAt:      a.now.UTC(),
	}
	bs.stats.Bids++
	if len(mine) > 0 {
		bs.stats.DuplicateBids++
	}
	if pb.total > 0 && a.req.FencingToken < pb.maxFence {
		bs.stats.StaleFenceBids++
	}
	if pb.total == 0 || a.req.FencingToken > pb.maxFence {
		pb.maxFence = a.req.FencingToken
	}
	pb.total++
	if pb.total == 2 {
		bs.stats.PostingsWithMultipleBids++
	}
	pb.byAccount[a.account] = append(mine, b)
	bs.record(a.account, b)
	if a.honourKeys {
		bs.byKey[idemKey{a.account, a.key}] = b
	}
	return bidCreated, *b
}

// find returns account's bids on the posting, oldest first.
func (bs *bidStore) find(account, postingID string) []wireBid {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	out := []wireBid{}
	if pb := bs.byPosting[postingID]; pb != nil {
		for _, b := range pb.byAccount[account] {
			out = append(out, *b)
		}
	}
	return out
}

func (bs *bidStore) snapshot() Stats {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.stats
}
