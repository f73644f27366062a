package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/internal/history"
	"github.com/bidder/bidder/internal/httpserver"
	"github.com/bidder/bidder/internal/ops"
	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
	"github.com/bidder/bidder/scanner"
	"github.com/bidder/bidder/worker"
	"github.com/bidder/bidder/worker/rules"
)

// What the status page lists, at most, per marketplace.
const (
	parkedShown   = 200
	recentPerPage = 50
	reviewsShown  = 100
)

// statusSource reads the status page from what every instance shares in
// Redis (history, ledger indexes, budget, scan status, asynq's queues and
// servers), so the page is the same whichever instance serves it; only the
// wait conditions are this process's own. A part that cannot be read is
// one line of Problems, the rest still shows.
func (a *App) statusSource() httpserver.StatusSource {
	rdb := a.Conn.Client
	hist := history.NewReader(rdb)
	waits := rules.NewWaits(rdb, "")
	insp := asynq.NewInspectorFromRedisClient(rdb)
	return func(ctx context.Context, since, until time.Time) httpserver.Status {
		var st httpserver.Status
		problem := func(what string, err error) {
			// go-redis and asynq errors name addresses, never credentials.
			st.Problems = append(st.Problems, what+": "+strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		now := time.Now()
		for _, id := range a.marketplaceIDs() {
			st.Marketplaces = append(st.Marketplaces, a.marketplaceStatus(ctx, id, hist, waits, since, until, now, problem))
		}
		st.Queues = a.queueStatus(insp, problem)
		servers, err := insp.Servers()
		if err != nil {
			problem("workers", err)
		}
		for _, s := range servers {
			qs := slices.Sorted(maps.Keys(s.Queues))
			for i, q := range qs {
				qs[i] = q + "=" + strconv.Itoa(s.Queues[q])
			}
			st.Workers = append(st.Workers, httpserver.Worker{Host: s.Host, PID: s.PID, Concurrency: s.Concurrency,
				Active: len(s.ActiveWorkers), Queues: strings.Join(qs, ", "), Started: s.Started, Status: s.Status})
		}
		sort.Slice(st.Workers, func(i, j int) bool {
			wi, wj := st.Workers[i], st.Workers[j]
			return wi.Host < wj.Host || wi.Host == wj.Host && wi.PID < wj.PID
		})
		for _, c := range a.Conditions.Active() {
			st.Conditions = append(st.Conditions, httpserver.Condition{Kind: c.Kind, Marketplace: c.Marketplace, Detail: c.Detail, Since: c.Since})
		}
		return st
	}
}

func (a *App) marketplaceStatus(ctx context.Context, id string, hist *history.Reader, waits *rules.Waits,
	since, until, now time.Time, problem func(string, error)) httpserver.Marketplace {
	m := httpserver.Marketplace{ID: id}
	var err error
	if m.Totals, err = hist.Totals(ctx, id); err != nil {
		problem(id+": totals", err)
	}
	series, err := hist.Series(ctx, id, since, until)
	if err != nil {
		problem(id+": history", err)
	}
	m.History = make(map[string][]httpserver.Point, len(series))
	for metric, ps := range series {
		out := make([]httpserver.Point, len(ps))
		for i, p := range ps {
			out[i] = httpserver.Point{Minute: p.Minute, Count: p.Count}
		}
		m.History[metric] = out
	}
	recent, err := hist.Recent(ctx, id, recentPerPage)
	if err != nil {
		problem(id+": latest decisions", err)
	}
	for _, d := range recent {
		m.Recent = append(m.Recent, httpserver.Decision{At: d.At, Posting: d.Posting, Title: d.Title, URL: d.URL,
			State: d.State, Amount: d.Amount, Currency: d.Currency, Rule: d.Rule})
	}
	if m.Undecided, err = a.Ledger.OpenCount(ctx, id); err != nil {
		problem(id+": undecided", err)
	}
	n, err := a.Ledger.ParkedCount(ctx, id)
	if err != nil {
		problem(id+": parked", err)
	}
	m.ParkedTotal = int(n)
	if n > 0 {
		ps, err := ops.ListParked(ctx, a.Ledger, id, parkedShown)
		if err != nil {
			problem(id+": parked postings", err)
		}
		for _, p := range ps {
			m.Parked = append(m.Parked, httpserver.Parked{Posting: p.Posting, Since: p.Since, Rule: p.Rule, Reason: p.Reason,
				HeldIntent: p.From == ledger.StateIntent})
		}
	}
	for _, sb := range a.Markets[id].Budgets(id) {
		b := httpserver.Budget{Account: sb.Account}
		if b.HourLeft, b.DayLeft, err = sb.Budget.Left(ctx, sb.Scope, now); err != nil {
			problem(sb.Scope+": bid budget", err)
		}
		counts, err := waits.Counts(ctx, sb.Scope, now)
		if err != nil {
			problem(sb.Scope+": budget waits", err)
		}
		for _, at := range slices.SortedFunc(maps.Keys(counts), time.Time.Compare) {
			b.Waits = append(b.Waits, httpserver.Wait{Opens: at, Postings: counts[at]})
		}
		m.Budgets = append(m.Budgets, b)
	}
	if n, err := a.Ledger.ReviewCount(ctx, id); err != nil {
		problem(id+": review queue", err)
	} else if m.ReviewTotal = int(n); n > 0 {
		items, err := a.reviewer().Queue(ctx, id, reviewsShown)
		if err != nil {
			problem(id+": review queue", err)
		}
		for _, it := range items {
			m.Reviews = append(m.Reviews, httpserver.Review{Posting: it.Posting, Title: it.Title, URL: it.URL, Until: it.Until,
				Amount: it.Amount, Currency: it.Currency, Proposal: it.Proposal, Reason: it.Reason})
		}
	}
	_, m.CanRetract = a.Adapters[id].(marketplace.Retracter)
	scan, ok, err := scanner.ReadStatus(ctx, a.Conn.Client, id)
	if err != nil {
		problem(id+": last scan", err)
	}
	if ok {
		m.Scan = &httpserver.Scan{At: scan.At, Result: scan.Result, Seen: scan.Seen, Enqueued: scan.Enqueued, Newest: scan.Newest}
	}
	return m
}

// queueStatus reads the queues this deployment uses: the configured ones
// and each marketplace's bid queue. One never used yet shows as empty.
func (a *App) queueStatus(insp *asynq.Inspector, problem func(string, error)) []httpserver.Queue {
	names := map[string]bool{worker.QueueScans: true}
	for q := range a.queues() {
		names[q] = true
	}
	// GetQueueInfo's "no such queue" is not asynq.ErrQueueNotFound; ask
	// which exist instead.
	exist, err := insp.Queues()
	if err != nil {
		problem("queues", err)
		return nil
	}
	var out []httpserver.Queue
	for _, q := range slices.Sorted(maps.Keys(names)) {
		if !slices.Contains(exist, q) {
			out = append(out, httpserver.Queue{Name: q})
			continue
		}
		qi, err := insp.GetQueueInfo(q)
		if err != nil {
			problem("queue "+q, err)
			continue
		}
		out = append(out, httpserver.Queue{Name: q, Size: qi.Size, Pending: qi.Pending, Active: qi.Active, Scheduled: qi.Scheduled,
			Retry: qi.Retry, Archived: qi.Archived, Done: qi.Completed, Latency: qi.Latency, Paused: qi.Paused})
	}
	return out
}

// statusActions are the status page's buttons: what `bidder ledger
// resume`, `bidder review approve|reject` and `bidder bid retract` do, for
// the marketplaces this process is configured with.
type statusActions struct {
	a *App
	r ops.Resumer
}

func (a *App) statusActions() statusActions {
	return statusActions{a: a, r: a.resumer()}
}

func (a *App) resumer() ops.Resumer {
	return ops.NewResumer(a.Conn.Client, a.Ledger, a.Cfg.Worker.QueuePerMarketplace, scanner.DefaultBidRetention)
}

// reviewer checks edited bids with each marketplace's rules.
func (a *App) reviewer() ops.Reviewer {
	engines := make(map[string]*rules.Engine, len(a.Markets))
	for id, m := range a.Markets {
		engines[id] = m.Rules
	}
	return ops.Reviewer{Resumer: a.resumer(), Rules: engines}
}

func (s statusActions) known(marketplaceID string) error {
	if _, ok := s.a.Markets[marketplaceID]; !ok {
		return fmt.Errorf("%w: marketplace %q is not configured here", httpserver.ErrRefused, marketplaceID)
	}
	return nil
}

func (s statusActions) Resume(ctx context.Context, marketplaceID, postingID string) error {
	if err := s.check(marketplaceID, postingID); err != nil {
		return err
	}
	return refused(s.r.Resume(ctx, marketplaceID, postingID))
}

func (s statusActions) ResumeReason(ctx context.Context, marketplaceID, reason string) (int, error) {
	if err := s.known(marketplaceID); err != nil {
		return 0, err
	}
	n, err := s.r.ResumeAll(ctx, marketplaceID, reason, nil)
	return n, refused(err)
}

func (s statusActions) Approve(ctx context.Context, marketplaceID, postingID, by string, amount float64, proposal string) (bool, error) {
	if err := s.check(marketplaceID, postingID); err != nil {
		return false, err
	}
	already, err := s.a.reviewer().Approve(ctx, marketplaceID, postingID, by, amount, proposal)
	return already, refused(err)
}

func (s statusActions) Reject(ctx context.Context, marketplaceID, postingID, by, why string) (bool, error) {
	if err := s.check(marketplaceID, postingID); err != nil {
		return false, err
	}
	already, err := s.a.reviewer().Reject(ctx, marketplaceID, postingID, by, why)
	return already, refused(err)
}

func (s statusActions) Retract(ctx context.Context, marketplaceID, postingID, by, why string) (bool, error) {
	if err := s.check(marketplaceID, postingID); err != nil {
		return false, err
	}
	got, err := ops.Retracter{Ledger: s.a.Ledger, Adapters: s.a.Adapters, Accounts: s.a.Accounts}.Retract(ctx, marketplaceID, postingID, by, why)
	return got.Already, refused(err)
}

func (s statusActions) check(marketplaceID, postingID string) error {
	if err := s.known(marketplaceID); err != nil {
		return err
	}
	if err := lock.ValidatePostingID(postingID); err != nil {
		return fmt.Errorf("%w: %w", httpserver.ErrRefused, err)
	}
	return nil
}

// refused marks what does not apply (nothing to resume, not in review, an
// edit out of bounds, an approval too late, a bid not placed or too late
// to retract) as the page's refusal, not a failure.
func refused(err error) error {
	for _, r := range []error{ops.ErrNothingToResume, ledger.ErrNotInReview, ledger.ErrReviewExpired, ops.ErrBadEdit,
		ledger.ErrNotPlaced, ops.ErrCannotRetract, marketplace.ErrRetractTooLate, marketplace.ErrBidNotFound} {
		if errors.Is(err, r) {
			return fmt.Errorf("%w: %w", httpserver.ErrRefused, err)
		}
	}
	return err
}
