package scanner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/bidder/bidder/ledger"
	"github.com/bidder/bidder/marketplace"
)

// Tracker defaults.
const (
	DefaultTrackRepoll  = time.Hour
	DefaultTrackHorizon = 14 * 24 * time.Hour
	DefaultTrackMaxBids = 1000
)

// Tracker results, the label values of bidder_tracker_runs_total.
const (
	TrackOK          = "ok"
	TrackRateBudget  = "rate_budget" // the shared request rate or a 429 would have made it wait too long
	TrackUnsupported = "unsupported" // the adapter cannot read bid statuses
	TrackError       = "error"
)

// TrackOptions configure the tracker (WithTracker).
type TrackOptions struct {
	// Repoll is how long after one poll a still-pending bid is asked about
	// again (default 1h).
	Repoll time.Duration
	// Horizon: a bid still pending this long after it was placed is
	// recorded as no_answer and not polled again (default 14 days).
	Horizon time.Duration
	// MaxBids bounds one run (default 1000); what is left is due next run.
	MaxBids int
}

// WithTracker sets the tracker's options (TrackHandler).
func WithTracker(t TrackOptions) HandlerOption { return func(o *handlerOptions) { o.track = t } }

// TrackSummary is what one tracker run did.
type TrackSummary struct {
	Marketplace string
	Result      string
	Polled      int // bids asked about
	Changed     int // whose outcome changed
	NoAnswer    int // past the horizon: recorded no_answer
	Unknown     int // the marketplace left out or could not say (still pending)
	Gone        int // no longer placed in the ledger (expired): dropped
}

// TrackHandler runs tracker tasks (TypeTrack): it asks the marketplace for
// the status of the placed bids whose poll is due, in batches the adapter
// accepts and at the marketplace's shared request rate (the scans' pace:
// one account, one limit), and records every outcome change in the ledger.
// A run that fails or stops at the wait budget loses nothing: the bids it
// took are due again after Repoll.
func (h *ScanHandler) TrackHandler() asynq.Handler { return asynq.HandlerFunc(h.processTrack) }

func (h *ScanHandler) processTrack(ctx context.Context, t *asynq.Task) error {
	p, err := DecodeScanPayload(t.Payload())
	if err != nil {
		h.o.log.Warn("tracker task archived: bad payload", zap.Error(err))
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	sum, err := h.Track(ctx, p.Marketplace)
	log := h.o.log.With(zap.String("marketplace", p.Marketplace), zap.Int64("slot", p.Slot), zap.String("result", sum.Result),
		zap.Int("polled", sum.Polled), zap.Int("changed", sum.Changed), zap.Int("no_answer", sum.NoAnswer), zap.Int("unknown", sum.Unknown))
	switch {
	case errors.Is(err, ErrUnknownMarketplace):
		log.Warn("tracker task archived", zap.Error(err))
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	case err != nil:
		log.Warn("tracker run failed", zap.Error(err))
		if errors.Is(err, marketplace.ErrPermanent) {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	case sum.Changed > 0 || sum.NoAnswer > 0:
		log.Info("tracker run")
	default:
		log.Debug("tracker run")
	}
	return nil
}

// Track runs one tracker pass over marketplaceID's due bids.
func (h *ScanHandler) Track(ctx context.Context, marketplaceID string) (sum TrackSummary, err error) {
	sum = TrackSummary{Marketplace: marketplaceID}
	defer func() {
		if err != nil && sum.Result == "" {
			sum.Result = TrackError
		}
		if !errors.Is(err, ErrUnknownMarketplace) {
			h.o.metrics.trackRuns.WithLabelValues(marketplaceID, sum.Result).Inc()
		}
	}()
	ad, ok := h.adapters[marketplaceID]
	if !ok {
		return sum, fmt.Errorf("%w %q", ErrUnknownMarketplace, marketplaceID)
	}
	sr, ok := ad.(marketplace.StatusReader)
	if !ok {
		sum.Result = TrackUnsupported
		return sum, nil
	}
	to := h.o.track
	st := &scanState{mp: marketplaceID, ad: ad, rate: h.o.rates[marketplaceID], log: h.o.log.With(zap.String("marketplace", marketplaceID))}
	for sum.Polled < to.MaxBids {
		// Pace before taking bids: a run that stops here leaves them due.
		if res, err := h.pace(ctx, st); res != "" || err != nil {
			sum.Result = TrackRateBudget
			return sum, err
		}
		n := min(max(sr.MaxStatusBatch(), 1), to.MaxBids-sum.Polled)
		due, err := h.ledger.DueBids(ctx, marketplaceID, n, to.Repoll)
		if err != nil {
			return sum, fmt.Errorf("scanner: track %s: %w", marketplaceID, err)
		}
		if len(due) == 0 {
			break
		}
		for _, g := range byAccount(due) {
			gsr := sr
			if g.account != "" {
				ad, ok := h.o.accounts[marketplaceID][g.account]
				if gsr, _ = ad.(marketplace.StatusReader); !ok || gsr == nil {
					// Placed by an account this config no longer has (or
					// cannot ask): they stay due, and the horizon is not
					// applied to bids nobody asked about.
					st.log.Warn("tracker: bids of an account not in the config are not polled", zap.String("account", g.account), zap.Int("bids", len(g.bids)))
					sum.Unknown += len(g.bids)
					sum.Polled += len(g.bids)
					continue
				}
			}
			statuses, err := h.statuses(ctx, st, gsr, g.bids)
			if err != nil {
				if errors.Is(err, errRateBudget) {
					sum.Result = TrackRateBudget
					return sum, nil
				}
				return sum, err
			}
			sum.Polled += len(g.bids)
			h.o.metrics.polled.WithLabelValues(marketplaceID).Add(float64(len(g.bids)))
			if err := h.record(ctx, marketplaceID, g.bids, statuses, &sum); err != nil {
				return sum, err
			}
		}
	}
	sum.Result = TrackOK
	return sum, nil
}

var errRateBudget = errors.New("scanner: wait budget spent")

// accountBids are one account's bids among a batch.
type accountBids struct {
	account string // "" the marketplace's own adapter
	bids    []ledger.TrackedBid
}

// byAccount splits a batch by the account that placed each bid, in the
// order the accounts first appear.
func byAccount(due []ledger.TrackedBid) []accountBids {
	var out []accountBids
	at := map[string]int{}
	for _, d := range due {
		i, ok := at[d.Account]
		if !ok {
			i = len(out)
			at[d.Account] = i
			out = append(out, accountBids{account: d.Account})
		}
		out[i].bids = append(out[i].bids, d)
	}
	return out
}

// statuses asks the marketplace about one batch, honouring 429s within the
// wait budget like a scan.
func (h *ScanHandler) statuses(ctx context.Context, st *scanState, sr marketplace.StatusReader, due []ledger.TrackedBid) ([]marketplace.BidStatus, error) {
	bids := make([]marketplace.PlacedBid, len(due))
	for i, d := range due {
		bids[i] = marketplace.PlacedBid{ID: d.BidID, PostingID: d.PostingID}
	}
	for {
		out, err := sr.BidStatuses(ctx, bids)
		switch {
		case err == nil && len(out) == len(bids):
			return out, nil
		case err == nil:
			return nil, fmt.Errorf("scanner: track %s: %w: %d statuses for %d bids", st.mp, marketplace.ErrPermanent, len(out), len(bids))
		case errors.Is(err, marketplace.ErrRateLimited):
			if perr := h.rateLimited(ctx, st, err); perr != nil {
				return nil, perr
			}
			if res, perr := h.pace(ctx, st); res != "" || perr != nil {
				if perr != nil {
					return nil, perr
				}
				return nil, errRateBudget
			}
		default:
			return nil, fmt.Errorf("scanner: track %s: bid statuses: %w", st.mp, err)
		}
	}
}

// record turns one batch's statuses into ledger outcomes, in one round trip.
func (h *ScanHandler) record(ctx context.Context, mp string, due []ledger.TrackedBid, statuses []marketplace.BidStatus, sum *TrackSummary) error {
	to := h.o.track
	now := h.o.now()
	obs := make([]ledger.Observed, len(due))
	for i, d := range due {
		s := statuses[i]
		o := ledger.Observed{PostingID: d.PostingID, BidID: d.BidID, Outcome: outcomeOf(s.Outcome), Since: s.ChangedAt,
			Next: to.Repoll, By: "tracker", Text: s.Text}
		if s.BidID != d.BidID {
			// Adapters answer in order; one that does not is not trusted.
			o.Outcome, o.Since, o.Text = ledger.BidPending, time.Time{}, ""
			sum.Unknown++
		} else if s.Outcome == marketplace.OutcomeUnknown || !s.Outcome.Valid() {
			sum.Unknown++
		}
		if !o.Outcome.Decided() && now.Sub(d.PlacedAt) >= to.Horizon {
			o.Outcome, o.Next = ledger.BidNoAnswer, 0
		}
		obs[i] = o
	}
	changes, err := h.ledger.RecordOutcomes(ctx, mp, obs)
	if err != nil {
		return fmt.Errorf("scanner: track %s: %w", mp, err)
	}
	var firstErr error
	for i, c := range changes {
		switch {
		case errors.Is(c.Err, ledger.ErrNotPlaced):
			sum.Gone++
		case c.Err != nil:
			if firstErr == nil {
				firstErr = c.Err
			}
		case c.Changed:
			sum.Changed++
			if obs[i].Outcome == ledger.BidNoAnswer {
				sum.NoAnswer++
			}
			h.o.metrics.outcomes.WithLabelValues(mp, string(obs[i].Outcome)).Inc()
			h.o.history.Count(mp, "outcome:"+string(obs[i].Outcome), 1)
		}
	}
	if firstErr != nil {
		// The others are recorded; this one is due again after Repoll.
		return fmt.Errorf("scanner: track %s: %w", mp, firstErr)
	}
	return nil
}

// outcomeOf maps the adapter's outcome to the ledger's. Unknown stays
// pending: the tracker asks again, and the horizon ends it.
func outcomeOf(o marketplace.Outcome) ledger.BidOutcome {
	switch o {
	case marketplace.OutcomeAwarded:
		return ledger.BidAwarded
	case marketplace.OutcomeRejected:
		return ledger.BidRejected
	case marketplace.OutcomeRetracted:
		return ledger.BidRetracted
	}
	return ledger.BidPending
}
