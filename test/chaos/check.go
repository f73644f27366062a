package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Posting is what the harness needs of a published posting.
type Posting struct {
	ID       string    `json:"id"`
	PostedAt time.Time `json:"posted_at"`
}

// SandboxStats is GET /v1/stats.
type SandboxStats struct {
	Postings                 int64 `json:"postings"`
	OpenPostings             int64 `json:"open_postings"`
	Bids                     int64 `json:"bids"`
	PostingsWithMultipleBids int64 `json:"postings_with_multiple_bids"`
	DuplicateBids            int64 `json:"duplicate_bids"`
	RejectedDuplicates       int64 `json:"rejected_duplicates"`
	IdempotentReplays        int64 `json:"idempotent_replays"`
	StaleFenceBids           int64 `json:"stale_fence_bids"`
}

// sandboxGet GETs path with the harness's token, retrying the sandbox's own
// injected faults (503, 429, dropped connections).
func sandboxGet(ctx context.Context, c *http.Client, base, path string, out any) error {
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+sandboxToken)
		resp, err := c.Do(req)
		if err != nil {
			last = err
			time.Sleep(50 * time.Millisecond)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			last = fmt.Errorf("GET %s: HTTP %d %s %v", path, resp.StatusCode, strings.TrimSpace(string(b)), err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		return json.Unmarshal(b, out)
	}
	return last
}

// SandboxPostings lists every open posting of a sandbox in publication order.
func SandboxPostings(ctx context.Context, c *http.Client, base string) ([]Posting, error) {
	var out []Posting
	cursor := ""
	for {
		var page struct {
			Postings []Posting `json:"postings"`
			Next     string    `json:"next_cursor"`
		}
		q := "/v1/postings?limit=500"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := sandboxGet(ctx, c, base, q, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Postings...)
		if len(page.Postings) == 0 || page.Next == "" || page.Next == cursor {
			return out, nil
		}
		cursor = page.Next
	}
}

// SandboxStatsOf reads GET /v1/stats.
func SandboxStatsOf(ctx context.Context, c *http.Client, base string) (SandboxStats, error) {
	var st SandboxStats
	err := sandboxGet(ctx, c, base, "/v1/stats", &st)
	return st, err
}

func (h *Harness) listPostings(ctx context.Context) ([]Posting, error) {
	return SandboxPostings(ctx, h.http, h.sandboxURL)
}

// ledgerStates reads the "s" field of each posting's ledger record ("" = none).
func ledgerStates(ctx context.Context, rdb redis.UniversalClient, posts []Posting) ([]string, error) {
	out := make([]string, len(posts))
	const batch = 1000
	for i := 0; i < len(posts); i += batch {
		end := min(i+batch, len(posts))
		cmds := make([]*redis.StringCmd, end-i)
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := i; j < end; j++ {
				cmds[j-i] = p.HGet(ctx, "bid_ledger:sandbox:"+posts[j].ID, "s")
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for j, c := range cmds {
			s, err := c.Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, err
			}
			out[i+j] = s
		}
	}
	return out, nil
}

func isFinal(s string) bool {
	return s == "placed" || s == "skipped" || s == "failed" || s == "dry_run"
}

// Queues the bidder processes use: the shared bid queue (tasks enqueued
// with worker.queue_per_marketplace off), the sandbox's own, and scans.
var (
	bidQueues = []string{"bids", "bids:sandbox"}
	allQueues = append(append([]string{}, bidQueues...), "scans")
)

// queueBacklog is pending+active+scheduled+retry of the queue (0 if the
// queue does not exist yet).
func queueBacklog(insp *asynq.Inspector, q string) (int, error) {
	info, err := insp.GetQueueInfo(q)
	if err != nil {
		// A queue exists once something was enqueued to it; after a Redis
		// restart without persistence it may not exist again. asynq v0.26
		// answers its internal NOT_FOUND, not ErrQueueNotFound, here.
		if errors.Is(err, asynq.ErrQueueNotFound) || strings.Contains(err.Error(), "does not exist") {
			return 0, nil
		}
		return 0, err
	}
	return info.Pending + info.Active + info.Scheduled + info.Retry, nil
}

// drain waits until both queues are empty and every posting is decided.
func (h *Harness) drain(ctx context.Context, posts []Posting, timeout time.Duration) (bool, string) {
	insp := asynq.NewInspectorFromRedisClient(h.rdb)
	deadline := time.Now().Add(timeout)
	why := ""
	for {
		why = h.drainState(ctx, insp, posts)
		if why == "" {
			return true, ""
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, why
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (h *Harness) drainState(ctx context.Context, insp *asynq.Inspector, posts []Posting) string {
	var parts []string
	for _, q := range allQueues {
		n, err := queueBacklog(insp, q)
		if err != nil {
			return fmt.Sprintf("queue %s: %v", q, err)
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("queue %s backlog %d", q, n))
		}
	}
	states, err := ledgerStates(ctx, h.rdb, posts)
	if err != nil {
		return fmt.Sprintf("ledger: %v", err)
	}
	open := 0
	for _, s := range states {
		if !isFinal(s) {
			open++
		}
	}
	if open > 0 {
		parts = append(parts, fmt.Sprintf("%d postings without a final ledger record", open))
	}
	return strings.Join(parts, "; ")
}

// check verifies the invariants after every bidder process stopped.
func (h *Harness) check(ctx context.Context, rep *Report, posts []Posting) {
	st, err := SandboxStatsOf(ctx, h.http, h.sandboxURL)
	if err != nil {
		rep.fail("GET /v1/stats: %v", err)
	}
	rep.Stats = st
	rep.Bids = st.Bids
	dupFail := rep.fail
	if h.cfg.AllowDuplicates {
		dupFail = rep.note
	}
	if st.DuplicateBids != 0 || st.PostingsWithMultipleBids != 0 {
		dupFail("sandbox counted duplicate_bids=%d postings_with_multiple_bids=%d (want 0)", st.DuplicateBids, st.PostingsWithMultipleBids)
	}
	if int(st.Postings) != len(posts) {
		rep.fail("sandbox has %d postings, the harness listed %d", st.Postings, len(posts))
	}

	states, err := ledgerStates(ctx, h.rdb, posts)
	if err != nil {
		rep.fail("ledger read: %v", err)
	}
	rep.Ledger = map[string]int{}
	var undecided []string
	for i, s := range states {
		name := s
		if name == "" {
			name = "none"
		}
		rep.Ledger[name]++
		if !isFinal(s) {
			undecided = append(undecided, posts[i].ID+"="+name)
		}
	}
	if len(undecided) > 0 {
		rep.fail("%d postings without a final ledger record (e.g. %s)", len(undecided), strings.Join(undecided[:min(10, len(undecided))], ", "))
	}
	if placed := int64(rep.Ledger["placed"]); placed != st.Bids {
		f := rep.fail
		if h.cfg.AllowDuplicates && st.Bids > placed {
			f = rep.note
		}
		f("sandbox holds %d bids, the ledger %d placed records (want equal)", st.Bids, placed)
	}

	// Locks: none left (fence counters are fine).
	var locks []string
	iter := h.rdb.Scan(ctx, 0, "bid_lock:*", 1000).Iterator()
	for iter.Next(ctx) {
		locks = append(locks, iter.Val())
	}
	if err := iter.Err(); err != nil {
		rep.fail("scan bid_lock:*: %v", err)
	}
	rep.LocksLeft = locks
	if len(locks) > 0 {
		var ttls []string
		for _, k := range locks[:min(10, len(locks))] {
			ttl, _ := h.rdb.PTTL(ctx, k).Result()
			ttls = append(ttls, fmt.Sprintf("%s (pttl %s)", k, ttl))
		}
		rep.fail("%d lock keys left after every worker stopped: %s", len(locks), strings.Join(ttls, ", "))
	}

	// Archived tasks: only for a permanent reason.
	insp := asynq.NewInspectorFromRedisClient(h.rdb)
	for _, q := range allQueues {
		for page := 1; ; page++ {
			tasks, err := insp.ListArchivedTasks(q, asynq.PageSize(100), asynq.Page(page))
			if err != nil {
				if !errors.Is(err, asynq.ErrQueueNotFound) && !strings.Contains(err.Error(), "does not exist") {
					rep.fail("list archived %s: %v", q, err)
				}
				break
			}
			for _, t := range tasks {
				a := Archived{Queue: q, ID: t.ID, LastErr: t.LastErr, Retried: t.Retried}
				rep.Archived = append(rep.Archived, a)
				if !permanentReason(t.LastErr) {
					rep.fail("task %s archived for a non-permanent reason after %d retries: %s", t.ID, t.Retried, t.LastErr)
				}
			}
			if len(tasks) < 100 {
				break
			}
		}
	}
	sort.Slice(rep.Archived, func(i, j int) bool { return rep.Archived[i].ID < rep.Archived[j].ID })
}

// permanentReason tells whether an archived task's last error is one the
// worker archives on purpose (asynq.SkipRetry): an unusable payload or a bid
// the marketplace rejected for good.
func permanentReason(lastErr string) bool {
	for _, s := range []string{"permanent marketplace failure", "bad payload", "not configured on this worker"} {
		if strings.Contains(lastErr, s) {
			return true
		}
	}
	return false
}
