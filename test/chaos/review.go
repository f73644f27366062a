package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

const (
	stateReview   = "review"
	stateApproved = "approved" // open again: its bid task is on its way
	stateRejected = "rejected"
	stateExpired  = "expired"
)

// ReviewReport is what the reviewers did during the run (Config.ReviewShare).
type ReviewReport struct {
	// Actions by kind: approve_twice (two reviewers approve at once, the
	// second with another amount), reject, approve_reject (an approval and
	// a rejection at once), rest (approved after the drain).
	Actions map[string]int `json:"actions"`
	// Answers by class: done, already (the other reviewer won: "approved
	// already", "rejected already", "not in review"), expired (the
	// deadline came first), error (Redis down, a killed process: the
	// posting stays in review and is met again).
	Answers   map[string]int `json:"answers"`
	Rejected  int            `json:"rejected_postings"`  // in the ledger at the end
	Expired   int            `json:"expired_postings"`   // the deadline came first
	BidsOnRej int            `json:"bids_on_rejected"`   // on rejected or expired postings: must be 0
	Examples  []string       `json:"examples,omitempty"` // a few unexpected answers
	Leftover  int            `json:"in_review_at_drain"` // approved by the harness after the drain
}

func (r *ReviewReport) String() string {
	return fmt.Sprintf("actions %s; answers %s; in review at the drain %d; at the end %d rejected, %d expired (bids on them %d)",
		kv(r.Actions), kv(r.Answers), r.Leftover, r.Rejected, r.Expired, r.BidsOnRej)
}

// reviewers play two people on two instances working the review queue
// while faults hit the workers and Redis: every second each marketplace's
// queue is listed with `bidder review list`, and up to three postings of it
// get an action, each as concurrent CLI processes. One outcome per posting
// is the claim: the sandbox's duplicate count and the ledger-to-bids check
// prove "approved twice, bid once"; check proves "rejected, never bid".
func (h *Harness) reviewers(ctx context.Context, rep *ReviewReport, stop <-chan struct{}) {
	var mu sync.Mutex
	note := func(kind, answer, example string) {
		mu.Lock()
		defer mu.Unlock()
		if kind != "" {
			rep.Actions[kind]++
		}
		if answer != "" {
			rep.Answers[answer]++
		}
		if example != "" && len(rep.Examples) < 5 {
			rep.Examples = append(rep.Examples, example)
		}
	}
	// Its own generator: the injector's is not safe for two goroutines.
	rng := rand.New(rand.NewPCG(h.cfg.Seed, 0x5245_5649_4557)) // "REVIEW"
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, m := range h.markets {
			ids, err := h.inReview(ctx, m.id)
			if err != nil {
				note("", "error", "list: "+err.Error())
				continue
			}
			for _, id := range ids[:min(3, len(ids))] {
				var cmds [][]string
				var kind string
				switch x := rng.Float64(); {
				case x < 0.6:
					kind = "approve_twice"
					cmds = [][]string{
						{"approve", "--marketplace", m.id, "--posting", id, "--by", "ann"},
						{"approve", "--marketplace", m.id, "--posting", id, "--by", "bob", "--amount", "60"},
					}
				case x < 0.85:
					kind = "reject"
					cmds = [][]string{{"reject", "--marketplace", m.id, "--posting", id, "--by", "ann", "--reason", "chaos"}}
				default:
					kind = "approve_reject"
					cmds = [][]string{
						{"approve", "--marketplace", m.id, "--posting", id, "--by", "ann"},
						{"reject", "--marketplace", m.id, "--posting", id, "--by", "bob", "--reason", "chaos"},
					}
				}
				note(kind, "", "")
				var wg sync.WaitGroup
				for _, c := range cmds {
					wg.Add(1)
					go func(args []string) {
						defer wg.Done()
						answer, example := classifyReview(h.bidderCLI(ctx, "review", args...))
						note("", answer, example)
					}(c)
				}
				wg.Wait()
			}
		}
	}
}

// classifyReview sorts a review command's answer: done, already (another
// reviewer's action won), expired (the deadline came first) or error, with
// the text of an unexpected one.
func classifyReview(out string, err error) (string, string) {
	s := out
	if err != nil {
		s += " " + err.Error()
	}
	switch {
	case strings.Contains(s, "expired"), strings.Contains(s, "deadline"):
		return "expired", ""
	case strings.Contains(s, "already"), strings.Contains(s, "not in review"):
		return "already", ""
	case err != nil:
		return "error", strings.TrimSpace(s)
	default:
		return "done", ""
	}
}

// inReview lists marketplace mp's postings in review with the CLI.
func (h *Harness) inReview(ctx context.Context, mp string) ([]string, error) {
	out, err := h.bidderCLI(ctx, "review", "list", "--marketplace", mp)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		if id, _, ok := strings.Cut(line, "\t"); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// reviewRest approves what is still in review once the drain is done,
// as an operator finishing the queue would.
func (h *Harness) reviewRest(ctx context.Context, rep *Report) {
	for _, m := range h.markets {
		ids, err := h.inReview(ctx, m.id)
		if err != nil {
			rep.fail("bidder review list --marketplace %s: %v", m.id, err)
			continue
		}
		rep.Review.Leftover += len(ids)
		for _, id := range ids {
			rep.Review.Actions["rest"]++
			out, err := h.bidderCLI(ctx, "review", "approve", "--marketplace", m.id, "--posting", id, "--by", "harness")
			if answer, _ := classifyReview(out, err); answer == "expired" || answer == "already" {
				rep.Review.Answers["rest_"+answer]++
				continue
			}
			if err != nil {
				rep.fail("bidder review approve %s:%s after the drain: %v (%s)", m.id, id, err, strings.TrimSpace(out))
			}
		}
	}
}

// checkReviews: a rejected or expired posting has no bid on the sandbox.
func (h *Harness) checkReviews(ctx context.Context, rep *Report, posts map[string][]Posting) {
	for _, m := range h.markets {
		recs, err := ledgerRecords(ctx, h.rdb, m.id, posts[m.id])
		if err != nil {
			rep.fail("ledger read: %v", err)
			return
		}
		for i, r := range recs {
			switch r.State {
			case stateRejected:
				rep.Review.Rejected++
			case stateExpired:
				rep.Review.Expired++
			default:
				continue
			}
			n, err := SandboxBidsOn(ctx, h.http, m.sb.url, posts[m.id][i].ID)
			if err != nil {
				rep.fail("%s: bids on %s: %v", m.id, posts[m.id][i].ID, err)
				continue
			}
			if n > 0 {
				rep.Review.BidsOnRej += n
				rep.fail("%s:%s ended %s in review, yet the sandbox holds %d bid(s) on it", m.id, posts[m.id][i].ID, r.State, n)
			}
		}
	}
	if rep.Review.Actions["approve_twice"]+rep.Review.Actions["reject"]+rep.Review.Actions["approve_reject"] == 0 {
		rep.fail("review share %g, yet the reviewers never met a posting in review", h.cfg.ReviewShare)
	}
}
