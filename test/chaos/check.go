package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
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

// SandboxBidsOn is how many bids the harness's account has on a posting
// (GET /v1/bids?posting_id=).
func SandboxBidsOn(ctx context.Context, c *http.Client, base, postingID string) (int, error) {
	var out struct {
		Bids []json.RawMessage `json:"bids"`
	}
	err := sandboxGet(ctx, c, base, "/v1/bids?posting_id="+url.QueryEscape(postingID), &out)
	return len(out.Bids), err
}

func (h *Harness) sandboxByID(id string) *sandboxInst {
	for _, sb := range h.sandboxes {
		if sb.id == id {
			return sb
		}
	}
	return nil
}

// Ledger keys as the ledger writes them without hash tags (ledger/doc.go).
func ledgerKey(mp, posting string) string { return "bid_ledger:" + mp + ":" + posting }
func parkedIndexKey(mp string) string     { return "bid_ledger_parked:" + mp }

const stateParked = "parked"

// ledgerRecord is what the harness reads of a posting's ledger record.
type ledgerRecord struct {
	State string // "" = no record or undecided
	Rule  string // parked: the park's rule (reason class)
	Why   string // parked: the error that led there
	// Reviewed: the rules sent it to review once (it has a deadline).
	Reviewed bool
}

// ledgerRecords reads the state (and, parked, the park's rule and reason)
// of each posting of marketplace mp.
func ledgerRecords(ctx context.Context, rdb redis.UniversalClient, mp string, posts []Posting) ([]ledgerRecord, error) {
	out := make([]ledgerRecord, len(posts))
	const batch = 1000
	for i := 0; i < len(posts); i += batch {
		end := min(i+batch, len(posts))
		cmds := make([]*redis.SliceCmd, end-i)
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := i; j < end; j++ {
				cmds[j-i] = p.HMGet(ctx, ledgerKey(mp, posts[j].ID), "s", "prule", "pwhy", "rvu")
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for j, c := range cmds {
			vals, err := c.Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, err
			}
			var f [4]string
			for k := range min(len(vals), 4) {
				f[k], _ = vals[k].(string)
			}
			out[i+j] = ledgerRecord{State: f[0], Rule: f[1], Why: f[2], Reviewed: f[3] != ""}
		}
	}
	return out, nil
}

// ledgerState is one posting's state ("" = none).
func (h *Harness) ledgerState(ctx context.Context, mp, id string) (string, error) {
	s, err := h.rdb.HGet(ctx, ledgerKey(mp, id), "s").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return s, err
}

func isFinal(s string) bool {
	return s == "placed" || s == "skipped" || s == "failed" || s == "dry_run" || s == stateRejected || s == stateExpired
}

// bidQueues are the queues bid tasks can be on: the shared "bids" (tasks
// enqueued with worker.queue_per_marketplace off, and resumes) and each
// marketplace's own.
func (h *Harness) bidQueues() []string {
	qs := []string{"bids"}
	for _, m := range h.markets {
		qs = append(qs, "bids:"+m.id)
	}
	return qs
}

func (h *Harness) allQueues() []string { return append(h.bidQueues(), "scans") }

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

// drain waits until every queue is empty and every posting is decided:
// final, or (parkedOK) parked.
func (h *Harness) drain(ctx context.Context, posts map[string][]Posting, timeout time.Duration, parkedOK bool) (bool, string) {
	insp := asynq.NewInspectorFromRedisClient(h.rdb)
	deadline := time.Now().Add(timeout)
	why := ""
	for next := time.Now().Add(15 * time.Second); ; {
		why = h.drainState(ctx, insp, posts, parkedOK)
		if why == "" {
			return true, ""
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, why
		}
		if time.Now().After(next) {
			h.cfg.Logf("chaos %s: draining: %s", h.cfg.Scenario, why)
			next = time.Now().Add(15 * time.Second)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (h *Harness) drainState(ctx context.Context, insp *asynq.Inspector, posts map[string][]Posting, parkedOK bool) string {
	var parts []string
	for _, q := range h.allQueues() {
		n, err := queueBacklog(insp, q)
		if err != nil {
			return fmt.Sprintf("queue %s: %v", q, err)
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("queue %s backlog %d", q, n))
		}
	}
	for _, m := range h.markets {
		recs, err := ledgerRecords(ctx, h.rdb, m.id, posts[m.id])
		if err != nil {
			return fmt.Sprintf("ledger: %v", err)
		}
		open, parked := 0, 0
		for _, r := range recs {
			switch {
			case isFinal(r.State):
			case r.State == stateParked, r.State == stateReview:
				// Both wait for a person: resume, or a review.
				parked++
			default:
				open++
			}
		}
		if open > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d postings undecided", m.id, open))
		}
		if parked > 0 && !parkedOK {
			parts = append(parts, fmt.Sprintf("%s: %d postings parked or in review", m.id, parked))
		}
	}
	return strings.Join(parts, "; ")
}

// resumeParked is the operator's step after the fault phase, with the real
// CLI: count what is parked (the ledger's records, and `bidder ledger list
// --state parked`, which must agree), then `bidder ledger resume --all`
// for every marketplace.
func (h *Harness) resumeParked(ctx context.Context, rep *Report, posts map[string][]Posting) {
	rep.Parked = map[string]int{}
	for _, m := range h.markets {
		recs, err := ledgerRecords(ctx, h.rdb, m.id, posts[m.id])
		if err != nil {
			rep.fail("ledger read: %v", err)
			return
		}
		parked := 0
		for i, r := range recs {
			if r.State != stateParked {
				continue
			}
			parked++
			rep.Parked[m.id+"/"+r.Rule]++
			if strings.Contains(r.Why, "replicas") {
				// Replicas short is a wait, never a counted failure.
				rep.fail("%s:%s parked for a replica condition: %s: %s", m.id, posts[m.id][i].ID, r.Rule, r.Why)
			}
			if len(rep.ParkedExamples) < 5 {
				rep.ParkedExamples = append(rep.ParkedExamples, fmt.Sprintf("%s:%s %s: %s", m.id, posts[m.id][i].ID, r.Rule, r.Why))
			}
		}
		rep.ParkedTotal += parked
		out, err := h.ledgerCLI(ctx, "list", "--marketplace", m.id, "--state", "parked", "--limit", "0")
		if err != nil {
			rep.fail("bidder ledger list --marketplace %s --state parked: %v", m.id, err)
		} else if listed := countLines(out); listed != parked {
			rep.fail("bidder ledger list --state parked lists %d postings of %s, the ledger has %d parked records", listed, m.id, parked)
		}
		out, err = h.ledgerCLI(ctx, "resume", "--marketplace", m.id, "--all")
		if err != nil {
			rep.fail("bidder ledger resume --marketplace %s --all: %v", m.id, err)
			continue
		}
		var n int
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if _, err := fmt.Sscanf(lines[len(lines)-1], "%d resumed", &n); err != nil {
			rep.fail("bidder ledger resume --marketplace %s --all: unexpected output %q", m.id, out)
		}
		rep.Resumed += n
		if n != parked {
			rep.fail("bidder ledger resume --marketplace %s --all resumed %d postings, %d were parked", m.id, n, parked)
		}
	}
}

// ledgerCLI runs `bidder ledger <args>` against the run's Redis with the
// run's config and returns its standard output.
func (h *Harness) ledgerCLI(ctx context.Context, args ...string) (string, error) {
	return h.bidderCLI(ctx, "ledger", args...)
}

// bidderCLI runs `bidder <command> <args>` as ledgerCLI does.
func (h *Harness) bidderCLI(ctx context.Context, command string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.cfg.BidderBin, append(append([]string{command}, args...), "--config", h.cfgPath)...)
	cmd.Env = append(os.Environ(), h.cliEnv()...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func countLines(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

// check verifies the invariants after every bidder process stopped.
func (h *Harness) check(ctx context.Context, rep *Report, posts map[string][]Posting) {
	rep.Ledger = map[string]int{}
	for _, sb := range h.sandboxes {
		if sb.id == marketplaceMain && h.cfg.Accounts != "" {
			h.checkAccountMarkets(ctx, rep, sb, posts)
			continue
		}
		h.checkMarketplace(ctx, rep, sb, posts[sb.id])
	}
	h.checkLong(ctx, rep)

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

	// Archived tasks: a bid task only for a permanent reason. A scan task is
	// one slot's scan, which the next slot repeats from the cursor, so an
	// archived scan loses nothing: counted, not failed.
	insp := asynq.NewInspectorFromRedisClient(h.rdb)
	scans := map[string]int{}
	for _, q := range h.allQueues() {
		for page := 1; ; page++ {
			tasks, err := insp.ListArchivedTasks(q, asynq.PageSize(100), asynq.Page(page))
			if err != nil {
				if !errors.Is(err, asynq.ErrQueueNotFound) && !strings.Contains(err.Error(), "does not exist") {
					rep.fail("list archived %s: %v", q, err)
				}
				break
			}
			for _, t := range tasks {
				if q == "scans" {
					scans[scanArchiveReason(t.LastErr)]++
					continue
				}
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
	if len(scans) > 0 {
		rep.ArchivedScans = scans
		rep.note("archived scan tasks (one slot each; the next slot scans from the same cursor): %s", kv(scans))
	}
}

// scanArchiveReason is a short class of an archived scan's last error.
func scanArchiveReason(lastErr string) string {
	for _, s := range []string{"unknown marketplace", "permanent marketplace failure", "transient marketplace failure", "rate limited"} {
		if strings.Contains(lastErr, s) {
			return strings.ReplaceAll(s, " ", "_")
		}
	}
	return "other"
}

// checkMarketplace checks one marketplace's sandbox against its ledger.
func (h *Harness) checkMarketplace(ctx context.Context, rep *Report, sb *sandboxInst, posts []Posting) {
	st, err := SandboxStatsOf(ctx, h.http, sb.url)
	if err != nil {
		rep.fail("%s: GET /v1/stats: %v", sb.id, err)
	}
	if sb.id == marketplaceMain {
		rep.Stats = st
	}
	rep.Bids += st.Bids
	dupFail := rep.fail
	if h.cfg.AllowDuplicates {
		dupFail = rep.note
	}
	if st.DuplicateBids != 0 || st.PostingsWithMultipleBids != 0 {
		dupFail("%s: sandbox counted duplicate_bids=%d postings_with_multiple_bids=%d (want 0)", sb.id, st.DuplicateBids, st.PostingsWithMultipleBids)
	}
	if int(st.Postings) != len(posts) {
		rep.fail("%s: sandbox has %d postings, the harness listed %d", sb.id, st.Postings, len(posts))
	}

	recs, err := ledgerRecords(ctx, h.rdb, sb.id, posts)
	if err != nil {
		rep.fail("ledger read: %v", err)
	}
	ledger := map[string]int{}
	var undecided []string
	for i, r := range recs {
		name := r.State
		if name == "" {
			name = "none"
		}
		ledger[name]++
		rep.Ledger[name]++
		if !isFinal(r.State) {
			undecided = append(undecided, posts[i].ID+"="+name)
		}
	}
	if len(undecided) > 0 {
		rep.fail("%s: %d postings not final at the end (e.g. %s)", sb.id, len(undecided), strings.Join(undecided[:min(10, len(undecided))], ", "))
	}
	if placed := int64(ledger["placed"]); placed != st.Bids {
		f := rep.fail
		if h.cfg.AllowDuplicates && st.Bids > placed {
			f = rep.note
		}
		f("%s: sandbox holds %d bids, the ledger %d placed records (want equal)", sb.id, st.Bids, placed)
	}
	if len(h.sandboxes) > 1 {
		if rep.Marketplaces == nil {
			rep.Marketplaces = map[string]MarketplaceReport{}
		}
		rep.Marketplaces[sb.id] = MarketplaceReport{Postings: len(posts), Bids: st.Bids, Duplicates: st.DuplicateBids, Ledger: ledger}
	}
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
