// Package history keeps what the status page draws, in Redis, so every
// instance shows the same: per-minute counts of each marketplace's events
// (placed, skipped by rule, failed by class, parked, duplicates stopped by
// layer) for 48 hours, running totals, and the latest decisions.
//
// Writers tally in memory and flush every few seconds in one pipeline, so
// the bid path pays no round trip for its history; a process that dies
// loses at most the last interval's counts. The counts are what the page
// charts, not the decision record: the ledger is that.
//
// Keys, all with the marketplace's hash tag (one Cluster slot each):
//
//	bid_history:{<mp>}:<unix hour>  hash "<minute>|<metric>" -> count, kept 49 h
//	bid_history:{<mp>}:d<unix day>  hash "<metric>" -> count, kept 92 days (reports)
//	bid_history:{<mp>}:totals       hash "<metric>" -> count
//	bid_history:{<mp>}:recent       list of the latest decisions (JSON), capped
package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Defaults.
const (
	DefaultPrefix  = "bid_history"
	DefaultFlush   = 5 * time.Second
	Retention      = 49 * time.Hour // 48 h shown, an hour of slack
	DayRetention   = 92 * 24 * time.Hour
	RecentDecision = 100 // decisions kept per marketplace
)

// Decision is one entry of the latest decisions.
type Decision struct {
	At       time.Time `json:"at"`
	Posting  string    `json:"posting"`
	Title    string    `json:"title,omitempty"`
	URL      string    `json:"url,omitempty"`
	State    string    `json:"state"` // placed, skipped, failed, dry_run, parked
	Amount   float64   `json:"amount,omitempty"`
	Currency string    `json:"currency,omitempty"`
	Rule     string    `json:"rule,omitempty"`
}

// Recorder tallies events and flushes them to Redis. Safe for concurrent
// use; Run flushes until its context ends.
type Recorder struct {
	rdb    redis.UniversalClient
	prefix string
	every  time.Duration
	now    func() time.Time
	log    *zap.Logger

	mu      sync.Mutex
	counts  map[countKey]int64
	recent  map[string][]Decision
	flushMu sync.Mutex
}

type countKey struct {
	mp     string
	minute int64 // Unix minute
	metric string
}

// Option configures a Recorder.
type Option func(*Recorder)

// WithFlushEvery sets how often the tally is written (default 5s).
func WithFlushEvery(d time.Duration) Option { return func(r *Recorder) { r.every = d } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(r *Recorder) { r.now = now } }

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) Option { return func(r *Recorder) { r.log = l } }

// NewRecorder returns a Recorder writing to rdb.
func NewRecorder(rdb redis.UniversalClient, opts ...Option) *Recorder {
	r := &Recorder{rdb: rdb, prefix: DefaultPrefix, every: DefaultFlush, now: time.Now, log: zap.NewNop(),
		counts: map[countKey]int64{}, recent: map[string][]Decision{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Count adds n to marketplaceID's metric for the current minute. Metrics
// are "placed", "skipped:<rule>", "failed:<class>", "dry_run", "parked",
// "dup:<layer>": a fixed vocabulary, not free text.
func (r *Recorder) Count(marketplaceID, metric string, n int) {
	if r == nil {
		return
	}
	k := countKey{marketplaceID, r.now().Unix() / 60, metric}
	r.mu.Lock()
	r.counts[k] += int64(n)
	r.mu.Unlock()
}

// Decided counts a decision and keeps it among the latest.
func (r *Recorder) Decided(marketplaceID string, d Decision) {
	if r == nil {
		return
	}
	metric := d.State
	if d.Rule != "" && (d.State == "skipped" || d.State == "failed") {
		metric += ":" + d.Rule
	}
	r.Count(marketplaceID, metric, 1)
	if d.At.IsZero() {
		d.At = r.now()
	}
	d.Title = clip(d.Title, 200)
	r.mu.Lock()
	l := append(r.recent[marketplaceID], d)
	if len(l) > RecentDecision {
		l = l[len(l)-RecentDecision:]
	}
	r.recent[marketplaceID] = l
	r.mu.Unlock()
}

// Run flushes every interval until ctx ends, then once more.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := r.Flush(fctx); err != nil {
				r.log.Warn("last history flush failed", zap.Error(err))
			}
			cancel()
			return
		case <-t.C:
			if err := r.Flush(ctx); err != nil {
				r.log.Debug("history flush failed; kept for the next one", zap.Error(err))
			}
		}
	}
}

// Flush writes the tally in one pipeline. What it could not write stays for
// the next flush.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	counts, recent := r.counts, r.recent
	r.counts, r.recent = map[countKey]int64{}, map[string][]Decision{}
	r.mu.Unlock()
	if len(counts) == 0 && len(recent) == 0 {
		return nil
	}
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		hours, days := map[string]bool{}, map[string]bool{}
		for k, n := range counts {
			hk := hourKey(r.prefix, k.mp, k.minute/60)
			dk := dayKey(r.prefix, k.mp, k.minute/(24*60))
			p.HIncrBy(ctx, hk, strconv.FormatInt(k.minute%60, 10)+"|"+k.metric, n)
			p.HIncrBy(ctx, dk, k.metric, n)
			p.HIncrBy(ctx, totalsKey(r.prefix, k.mp), k.metric, n)
			hours[hk], days[dk] = true, true
		}
		for hk := range hours {
			p.Expire(ctx, hk, Retention)
		}
		for dk := range days {
			p.Expire(ctx, dk, DayRetention)
		}
		for mp, ds := range recent {
			vals := make([]any, 0, len(ds))
			for _, d := range ds {
				b, _ := json.Marshal(d)
				vals = append(vals, b)
			}
			p.LPush(ctx, recentKey(r.prefix, mp), vals...)
			p.LTrim(ctx, recentKey(r.prefix, mp), 0, RecentDecision-1)
		}
		return nil
	})
	if err != nil {
		// Put it back: counts add up, decisions go before newer ones.
		r.mu.Lock()
		for k, n := range counts {
			r.counts[k] += n
		}
		for mp, ds := range recent {
			r.recent[mp] = append(ds, r.recent[mp]...)
		}
		r.mu.Unlock()
		return fmt.Errorf("history: flush: %w", err)
	}
	return nil
}

func hourKey(prefix, mp string, hour int64) string {
	return prefix + ":{" + mp + "}:" + strconv.FormatInt(hour, 10)
}
func dayKey(prefix, mp string, day int64) string {
	return prefix + ":{" + mp + "}:d" + strconv.FormatInt(day, 10)
}
func totalsKey(prefix, mp string) string { return prefix + ":{" + mp + "}:totals" }
func recentKey(prefix, mp string) string { return prefix + ":{" + mp + "}:recent" }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Point is one minute's count.
type Point struct {
	Minute time.Time
	Count  int64
}

// Reader reads what Recorders wrote.
type Reader struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

// NewReader returns a Reader on rdb.
func NewReader(rdb redis.UniversalClient) *Reader {
	return &Reader{rdb: rdb, prefix: DefaultPrefix, now: time.Now}
}

// Series returns marketplaceID's per-minute counts by metric from since to
// until (at most Retention), in minute order; minutes without events are
// absent.
func (r *Reader) Series(ctx context.Context, marketplaceID string, since, until time.Time) (map[string][]Point, error) {
	if until.Sub(since) > Retention {
		since = until.Add(-Retention)
	}
	var hours []int64
	for h := since.Unix() / 3600; h <= until.Unix()/3600; h++ {
		hours = append(hours, h)
	}
	cmds := make([]*redis.MapStringStringCmd, len(hours))
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hours {
			cmds[i] = p.HGetAll(ctx, hourKey(r.prefix, marketplaceID, h))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history: read %s: %w", marketplaceID, err)
	}
	out := map[string][]Point{}
	for i, c := range cmds {
		for field, v := range c.Val() {
			minute, metric, ok := strings.Cut(field, "|")
			m, err1 := strconv.ParseInt(minute, 10, 64)
			n, err2 := strconv.ParseInt(v, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				continue // not ours; never a panic on what Redis holds
			}
			at := time.Unix(hours[i]*3600+m*60, 0).UTC()
			if at.Before(since.Truncate(time.Minute)) || at.After(until) {
				continue
			}
			out[metric] = append(out[metric], Point{Minute: at, Count: n})
		}
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Minute.Before(ps[j].Minute) })
	}
	return out, nil
}

// Sum adds up marketplaceID's counts by metric from since to until: by
// the minute within the last 48 hours, else by whole UTC days (the days
// since and until fall in count whole), at most DayRetention back.
func (r *Reader) Sum(ctx context.Context, marketplaceID string, since, until time.Time) (map[string]int64, error) {
	out := map[string]int64{}
	if r.now().Sub(since) < Retention-time.Hour {
		series, err := r.Series(ctx, marketplaceID, since, until)
		if err != nil {
			return nil, err
		}
		for m, pts := range series {
			for _, p := range pts {
				out[m] += p.Count
			}
		}
		return out, nil
	}
	if until.Sub(since) > DayRetention {
		since = until.Add(-DayRetention)
	}
	first, last := since.Unix()/86400, until.Unix()/86400
	cmds := make([]*redis.MapStringStringCmd, 0, last-first+1)
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for d := first; d <= last; d++ {
			cmds = append(cmds, p.HGetAll(ctx, dayKey(r.prefix, marketplaceID, d)))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("history: days of %s: %w", marketplaceID, err)
	}
	for _, c := range cmds {
		for m, v := range c.Val() {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[m] += n
			}
		}
	}
	return out, nil
}

// Totals returns marketplaceID's running totals by metric.
func (r *Reader) Totals(ctx context.Context, marketplaceID string) (map[string]int64, error) {
	m, err := r.rdb.HGetAll(ctx, totalsKey(r.prefix, marketplaceID)).Result()
	if err != nil {
		return nil, fmt.Errorf("history: totals of %s: %w", marketplaceID, err)
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// Recent returns marketplaceID's latest decisions, newest first, at most n.
func (r *Reader) Recent(ctx context.Context, marketplaceID string, n int) ([]Decision, error) {
	vals, err := r.rdb.LRange(ctx, recentKey(r.prefix, marketplaceID), 0, int64(n)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("history: latest decisions of %s: %w", marketplaceID, err)
	}
	out := make([]Decision, 0, len(vals))
	for _, v := range vals {
		var d Decision
		if json.Unmarshal([]byte(v), &d) == nil {
			out = append(out, d)
		}
	}
	return out, nil
}
