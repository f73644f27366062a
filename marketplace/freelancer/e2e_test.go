package freelancer

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// TestWorkerPipelineBidsOncePerProject runs the real bid pipeline — two
// worker instances (own lock managers) over one real redis-server, the
// ledger, permissive rules — against the fake Freelancer API while it fails
// in every way a bid can: 5xx before storing, the bid stored and then the
// connection dropped, the bid stored and then a 502 or a broken 200, 429s,
// and 503s on reconciliation reads. The fake accepts duplicate bids, so
// only bidder keeps each project at one.
func TestWorkerPipelineBidsOncePerProject(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	led := ledger.New(rdb)

	f := newFakeServer(t)
	const n = 36
	for i := int64(1); i <= n; i++ {
		p := project(1000+i, 1_767_225_600+i)
		if i%2 == 0 {
			p.Type, p.Min, p.Max = "hourly", 20, 40
		}
		f.add(p)
	}
	closed := map[int64]bool{1003: true, 1017: true, 1030: true}
	f.closeOnPost = closed
	f.onPost = func(projectID int64, attempt int) fault {
		if attempt > 1 {
			return faultNone
		}
		switch projectID % 6 {
		case 1:
			return faultNoStore500
		case 2:
			return faultStoreDrop
		case 3:
			return fault429
		case 4:
			return faultStore502
		case 5:
			return faultMalformed200
		}
		return faultNone
	}
	var getMu sync.Mutex
	bidReads := map[string]int{}
	f.onGet = func(r *http.Request) fault {
		if r.URL.Path != pathBids {
			return faultNone
		}
		getMu.Lock()
		defer getMu.Unlock()
		p := r.URL.Query().Get("projects[]")
		bidReads[p]++
		if id, _ := strconv.Atoi(p); id%4 == 0 && bidReads[p] == 1 {
			return fault503
		}
		return faultNone
	}

	a := f.adapter(t, nil)
	var postings []marketplace.Posting
	cursor := ""
	for {
		page, err := a.Scan(context.Background(), cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		postings = append(postings, page.Postings...)
		if page.NextCursor == cursor || len(page.Postings) == 0 {
			break
		}
		cursor = page.NextCursor
	}
	uniq := map[string]marketplace.Posting{}
	for _, p := range postings {
		uniq[p.ID] = p
	}
	if len(uniq) != n {
		t.Fatalf("scanned %d projects, want %d", len(uniq), n)
	}

	engine, err := rules.New(rules.Config{
		Amount: rules.AmountConfig{
			Fixed:  rules.AmountRule{Strategy: rules.StrategyFixed, Amount: 100},
			Hourly: rules.AmountRule{Strategy: rules.StrategyFixed, Amount: 30},
		},
		Proposal: rules.ProposalConfig{Template: "I can do {{.Title}}."},
	})
	if err != nil {
		t.Fatal(err)
	}
	handler := func() *worker.BidHandler {
		h, err := worker.NewBidHandler(lock.NewManager(rdb, lock.WithTTL(600*time.Millisecond)), led, map[string]worker.Marketplace{
			"freelancer": {Adapter: a, Rules: engine},
		}, worker.WithSettleDelay(150*time.Millisecond), worker.WithBusyDelay(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	instances := []*worker.BidHandler{handler(), handler()}

	var wg sync.WaitGroup
	errs := make(chan error, 2*len(uniq))
	for _, p := range uniq {
		task, err := worker.NewBidTask(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range instances {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := drive(h, task); err != nil && !errors.Is(err, asynq.SkipRetry) {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for i := int64(1); i <= n; i++ {
		id := 1000 + i
		bids := f.bidsOn(id)
		rec, err := led.Get(context.Background(), "freelancer", strconv.FormatInt(id, 10))
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		posts := f.postAttempts[id]
		f.mu.Unlock()
		switch {
		case closed[id]:
			if bids != 0 || rec.State != ledger.StateFailed {
				t.Errorf("closed project %d: %d bids, ledger %s", id, bids, rec.State)
			}
		case bids != 1:
			t.Errorf("project %d has %d bids, want exactly 1", id, bids)
		case rec.State != ledger.StatePlaced || rec.BidID == "":
			t.Errorf("project %d: ledger %+v", id, rec)
		}
		// Refused first attempts are sent again; stored ones are found by
		// reconciliation and never sent again.
		wantPosts := 1
		if id%6 == 1 || id%6 == 3 {
			wantPosts = 2
		}
		if posts != wantPosts {
			t.Errorf("project %d: %d POSTs, want %d", id, posts, wantPosts)
		}
	}
}

// drive runs a task the way asynq would: again after each retry, waiting
// the delay the handler asked for (capped), until it ends or is archived.
func drive(h asynq.Handler, task *asynq.Task) error {
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; ; n++ {
		err := h.ProcessTask(context.Background(), task)
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("task still retrying after 20s: " + err.Error())
		}
		time.Sleep(min(worker.RetryDelay(n, err, task), 300*time.Millisecond))
	}
}
