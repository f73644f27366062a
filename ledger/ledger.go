package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// State is where a posting's decision stands.
type State string

const (
	StateNone    State = ""
	StateIntent  State = "intent"
	StatePlaced  State = "placed"
	StateSkipped State = "skipped"
	StateFailed  State = "failed"
	StateDryRun  State = "dry_run"
)

// Final reports whether the posting is decided for good.
func (s State) Final() bool {
	return s == StatePlaced || s == StateSkipped || s == StateFailed || s == StateDryRun
}

func (s State) valid() bool { return s == StateNone || s == StateIntent || s.Final() }

var (
	// ErrStale: a newer lock holder exists; nothing was written.
	ErrStale = errors.New("ledger: stale fencing token")
	// ErrDecided: the record is already final; nothing was written.
	ErrDecided = errors.New("ledger: posting already decided")
	// ErrPending: an earlier holder's intent is unresolved: a bid may exist.
	// Reconcile with the marketplace, then Placed, or ClearIntent and retry.
	// The error is a *PendingError.
	ErrPending = errors.New("ledger: earlier attempt unresolved")
	// ErrCorrupt: a record or reply Redis returned could not be understood.
	ErrCorrupt = errors.New("ledger: unreadable record")
	// ErrReplicas: with WithWaitReplicas, fewer replicas than asked
	// acknowledged an intent within the timeout (or WAIT could not be sent
	// with it). The intent is on the master but may vanish in a failover:
	// no bid. The error is a *ReplicaError.
	ErrReplicas = errors.New("ledger: write not acknowledged by enough replicas")
)

// ReplicaError describes an intent that too few replicas acknowledged.
type ReplicaError struct {
	Key         string
	Acked, Want int64
	Err         error // why WAIT gave no count (nil when it answered)
}

func (e *ReplicaError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", ErrReplicas, e.Key, e.Err)
	}
	return fmt.Sprintf("%s: %s: %d of %d replicas", ErrReplicas, e.Key, e.Acked, e.Want)
}

func (e *ReplicaError) Is(target error) bool { return target == ErrReplicas }
func (e *ReplicaError) Unwrap() error        { return e.Err }

// PendingError describes the unresolved intent behind ErrPending.
type PendingError struct {
	Key   string
	Token int64     // the earlier holder's token
	At    time.Time // when it wrote the intent, by Redis' clock
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("%s: %s: intent of token %d from %s", ErrPending, e.Key, e.Token, e.At.UTC().Format(time.RFC3339Nano))
}

func (e *PendingError) Is(target error) bool { return target == ErrPending }

// DefaultRetention is how long a record is kept.
const DefaultRetention = 30 * 24 * time.Hour

// DefaultKeyPrefix is the record key prefix.
const DefaultKeyPrefix = "bid_ledger"

// Fence is the lock a write is made under (a *lock.Lock satisfies it).
type Fence interface {
	Token() int64
	FenceKey() string
	Key() string    // the lock key: a write is refused unless it holds Holder
	Holder() string // the holder name stored in the lock key
}

// Record is one posting's decision.
type Record struct {
	State    State
	Token    int64     // token of the holder that wrote it
	At       time.Time // when it was written, by Redis' clock
	Worker   string    // holder that wrote it
	BidID    string    // placed: the marketplace's bid ID
	Amount   float64   // placed, dry_run: the amount
	Currency string    // placed, dry_run
	Rule     string    // skipped, failed: the rule or error class that decided
	Reason   string    // skipped, failed: human-readable reason
}

// Ledger reads and writes records. Safe for concurrent use.
type Ledger struct {
	rdb       redis.UniversalClient
	prefix    string
	hashTags  bool
	retention time.Duration
	write     *redis.Script
	writes    *prometheus.CounterVec

	waitReplicas int
	waitTimeout  time.Duration
}

// Option configures a Ledger.
type Option func(*Ledger)

// WithRetention sets how long records live (default 30 days).
func WithRetention(d time.Duration) Option { return func(l *Ledger) { l.retention = d } }

// WithKeyPrefix sets the record key prefix (default "bid_ledger").
func WithKeyPrefix(p string) Option { return func(l *Ledger) { l.prefix = p } }

// WithHashTags puts each record in its posting's Redis Cluster slot; it must
// match the lock's setting.
func WithHashTags(on bool) Option { return func(l *Ledger) { l.hashTags = on } }

// WithWaitReplicas makes every write wait until n replicas have it, or
// timeout: WAIT n timeout is sent in the same pipeline right after the write
// script (one round trip; on Cluster, to the master of the record's slot).
// An intent that fewer than n replicas acknowledged is an error
// (ErrReplicas): fail closed, no bid, since after a failover the new master
// might not have it. Final writes and ClearIntent are not failed by a short
// count (the record exists on the master; if a failover loses a placed
// record, the intent it replaced is lost too or is still there, and
// reconciliation finds the bid): they are counted as "unreplicated".
// n <= 0 turns it off (the default). timeout must be positive and shorter
// than the client's read timeout. See docs/redis.md.
func WithWaitReplicas(n int, timeout time.Duration) Option {
	return func(l *Ledger) { l.waitReplicas, l.waitTimeout = n, timeout }
}

// WithRegisterer registers bidder_ledger_writes_total on r.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(l *Ledger) {
		if r == nil {
			return
		}
		if err := r.Register(l.writes); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if c, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					l.writes = c
				}
			}
		}
	}
}

//go:embed scripts/write.lua
var writeLua string

// New returns a Ledger on rdb.
func New(rdb redis.UniversalClient, opts ...Option) *Ledger {
	l := &Ledger{
		rdb:       rdb,
		prefix:    DefaultKeyPrefix,
		retention: DefaultRetention,
		write:     redis.NewScript(writeLua),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_ledger_writes_total",
			Help: "Ledger writes by result: ok, stale (refused: a newer lock holder exists), decided (refused: already final), pending (refused: an earlier attempt is unresolved), unreplicated (with wait_replicas: written, fewer replicas acknowledged it; an error for intents), error.",
		}, []string{"result"}),
	}
	for _, o := range opts {
		o(l)
	}
	for _, r := range []string{"ok", "stale", "decided", "pending", "unreplicated", "error"} {
		l.writes.WithLabelValues(r) // zero, not absent, before the first
	}
	if l.retention <= 0 {
		l.retention = DefaultRetention
	}
	if l.waitReplicas > 0 && l.waitTimeout < time.Millisecond {
		// WAIT takes milliseconds, and 0 would block until enough replicas
		// answer: never for a worker.
		l.waitTimeout = time.Millisecond
	}
	return l
}

// Retention returns the record lifetime in force.
func (l *Ledger) Retention() time.Duration { return l.retention }

// Key is the record key of a posting.
func (l *Ledger) Key(marketplaceID, postingID string) string {
	if l.hashTags {
		return l.prefix + ":{" + marketplaceID + ":" + postingID + "}"
	}
	return l.prefix + ":" + marketplaceID + ":" + postingID
}

// Get returns the posting's record; State is StateNone when there is none.
func (l *Ledger) Get(ctx context.Context, marketplaceID, postingID string) (Record, error) {
	key := l.Key(marketplaceID, postingID)
	m, err := l.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return Record{}, fmt.Errorf("ledger: get %s: %w", key, err)
	}
	rec, err := parse(m)
	if err != nil {
		return Record{}, fmt.Errorf("%s: %w", key, err)
	}
	return rec, nil
}

// Decided reports, for each posting, whether its record is final: what the
// scanner needs to skip postings, in one round trip for a whole page.
func (l *Ledger) Decided(ctx context.Context, marketplaceID string, postingIDs []string) ([]bool, error) {
	if len(postingIDs) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(postingIDs))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range postingIDs {
			cmds[i] = p.HGet(ctx, l.Key(marketplaceID, id), "s")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: batch lookup of %d postings: %w", len(postingIDs), err)
	}
	out := make([]bool, len(postingIDs))
	for i, c := range cmds {
		s, err := c.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("ledger: batch lookup %s: %w", postingIDs[i], err)
		}
		out[i] = State(s).Final()
	}
	return out, nil
}

// Intent records that a bid is about to be sent under f. From here until a
// final write, the posting must be reconciled before anyone bids again.
// Like every write but Placed, it fails with ErrPending over an earlier
// holder's intent, so a worker needs no separate read first.
func (l *Ledger) Intent(ctx context.Context, f Fence, marketplaceID, postingID, worker string) error {
	return l.put(ctx, f, marketplaceID, postingID, StateIntent, "w", worker)
}

// Placed records the bid the marketplace stored.
func (l *Ledger) Placed(ctx context.Context, f Fence, marketplaceID, postingID, worker, bidID string, amount float64, currency string) error {
	return l.put(ctx, f, marketplaceID, postingID, StatePlaced, "w", worker, "b", bidID,
		"amt", strconv.FormatFloat(amount, 'f', -1, 64), "cur", currency)
}

// DryRun records that the posting would have been bid on.
func (l *Ledger) DryRun(ctx context.Context, f Fence, marketplaceID, postingID, worker string, amount float64, currency string) error {
	return l.put(ctx, f, marketplaceID, postingID, StateDryRun, "w", worker,
		"amt", strconv.FormatFloat(amount, 'f', -1, 64), "cur", currency)
}

// Skipped records that a rule said no.
func (l *Ledger) Skipped(ctx context.Context, f Fence, marketplaceID, postingID, rule, reason string) error {
	return l.put(ctx, f, marketplaceID, postingID, StateSkipped, "rule", rule, "why", reason)
}

// Failed records a permanent failure (posting closed, bid rejected).
func (l *Ledger) Failed(ctx context.Context, f Fence, marketplaceID, postingID, rule, reason string) error {
	return l.put(ctx, f, marketplaceID, postingID, StateFailed, "rule", rule, "why", reason)
}

// ClearIntent removes an intent that is known to have placed nothing: f's
// own after an answer that proves no bid was stored (rate limited, failed
// before anything happened), or an earlier holder's after reconciliation
// found no bid. Only the newest holder may clear (the fence).
func (l *Ledger) ClearIntent(ctx context.Context, f Fence, marketplaceID, postingID string) error {
	return l.put(ctx, f, marketplaceID, postingID, StateNone)
}

func (l *Ledger) put(ctx context.Context, f Fence, marketplaceID, postingID string, state State, fields ...string) error {
	key := l.Key(marketplaceID, postingID)
	args := make([]any, 0, 4+len(fields))
	args = append(args, f.Token(), string(state), l.retention.Milliseconds(), f.Holder())
	for _, v := range fields {
		args = append(args, v)
	}
	keys := []string{key, f.FenceKey(), f.Key()}
	var (
		res     []string
		err     error
		replErr *ReplicaError
	)
	if l.waitReplicas > 0 {
		res, replErr, err = l.writeAndWait(ctx, keys, state, args)
	} else {
		res, err = l.write.Run(ctx, l.rdb, keys, args...).StringSlice()
	}
	if err != nil {
		l.writes.WithLabelValues("error").Inc()
		return fmt.Errorf("ledger: write %s %s: %w", state, key, err)
	}
	if len(res) == 0 {
		l.writes.WithLabelValues("error").Inc()
		return fmt.Errorf("%w: empty reply to write of %s", ErrCorrupt, key)
	}
	switch res[0] {
	case "ok":
		if replErr != nil {
			l.writes.WithLabelValues("unreplicated").Inc()
			if state == StateIntent {
				return replErr
			}
			return nil
		}
		l.writes.WithLabelValues("ok").Inc()
		return nil
	case "stale":
		l.writes.WithLabelValues("stale").Inc()
		newest := ""
		if len(res) > 1 {
			newest = res[1]
		}
		return fmt.Errorf("%w: %s: token %d, newest %s", ErrStale, key, f.Token(), newest)
	case "pending":
		if len(res) < 3 {
			break
		}
		tok, err1 := strconv.ParseInt(res[1], 10, 64)
		at, err2 := strconv.ParseInt(res[2], 10, 64)
		if err1 != nil || err2 != nil {
			break
		}
		l.writes.WithLabelValues("pending").Inc()
		return &PendingError{Key: key, Token: tok, At: time.UnixMilli(at)}
	case "decided":
		l.writes.WithLabelValues("decided").Inc()
		st := ""
		if len(res) > 1 {
			st = res[1]
		}
		return fmt.Errorf("%w: %s is %s", ErrDecided, key, st)
	}
	l.writes.WithLabelValues("error").Inc()
	return fmt.Errorf("%w: reply %q to write of %s", ErrCorrupt, res, key)
}

// writeAndWait sends the write script and WAIT in one pipeline. It returns
// the script's reply, and a *ReplicaError when the write succeeded but WAIT
// did not confirm enough replicas.
func (l *Ledger) writeAndWait(ctx context.Context, keys []string, state State, args []any) ([]string, *ReplicaError, error) {
	var target redis.Cmdable = l.rdb
	cc, isCluster := l.rdb.(*redis.ClusterClient)
	if isCluster {
		// go-redis' cluster pipeline routes a keyless WAIT to any shard (or
		// refuses it); it must follow the write on the record's master.
		node, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return nil, nil, err
		}
		target = node
	}
	send := func(eval bool) (*redis.Cmd, *redis.Cmd, error) {
		pipe := target.Pipeline()
		var sc *redis.Cmd
		if eval {
			sc = pipe.Eval(ctx, writeLua, keys, args...)
		} else {
			sc = pipe.EvalSha(ctx, l.write.Hash(), keys, args...)
		}
		// Pipeliner has no Wait; the reply waits at most waitTimeout, which
		// config keeps below the client's read timeout.
		wc := pipe.Do(ctx, "wait", l.waitReplicas, l.waitTimeout.Milliseconds())
		_, err := pipe.Exec(ctx)
		return sc, wc, err
	}
	sc, wc, _ := send(false)
	if redis.HasErrorPrefix(sc.Err(), "NOSCRIPT") {
		// Not run: load it by sending the source once.
		sc, wc, _ = send(true)
	}
	if err := sc.Err(); err != nil {
		if isCluster && isRedirect(err) {
			// The slot moved (MOVED) or is moving (ASK): the script did not
			// run on this node. Refresh the slot map for the next attempt.
			cc.ReloadState(ctx)
			if state == StateIntent {
				return nil, nil, fmt.Errorf("%w (slot moving; nothing written, retry)", err)
			}
			// A final write must land: through the cluster client, which
			// follows the redirect, without WAIT (see WithWaitReplicas).
			res, err := l.write.Run(ctx, l.rdb, keys, args...).StringSlice()
			if err != nil {
				return nil, nil, err
			}
			return res, &ReplicaError{Key: keys[0], Want: int64(l.waitReplicas), Err: errors.New("slot moved: written without WAIT")}, nil
		}
		return nil, nil, err
	}
	res, err := sc.StringSlice()
	if err != nil {
		return nil, nil, err
	}
	n, werr := wc.Int64()
	switch {
	case werr != nil:
		return res, &ReplicaError{Key: keys[0], Want: int64(l.waitReplicas), Err: werr}, nil
	case n < int64(l.waitReplicas):
		return res, &ReplicaError{Key: keys[0], Acked: n, Want: int64(l.waitReplicas)}, nil
	}
	return res, nil, nil
}

func isRedirect(err error) bool {
	return redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")
}

func parse(m map[string]string) (Record, error) {
	if len(m) == 0 {
		return Record{}, nil
	}
	r := Record{
		State:    State(m["s"]),
		Worker:   m["w"],
		BidID:    m["b"],
		Currency: m["cur"],
		Rule:     m["rule"],
		Reason:   m["why"],
	}
	if !r.State.valid() || r.State == StateNone {
		return Record{}, fmt.Errorf("%w: state %q", ErrCorrupt, m["s"])
	}
	var err error
	if r.Token, err = strconv.ParseInt(m["t"], 10, 64); err != nil {
		return Record{}, fmt.Errorf("%w: token %q", ErrCorrupt, m["t"])
	}
	ms, err := strconv.ParseInt(m["at"], 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("%w: time %q", ErrCorrupt, m["at"])
	}
	r.At = time.UnixMilli(ms)
	if a := m["amt"]; a != "" {
		if r.Amount, err = strconv.ParseFloat(a, 64); err != nil {
			return Record{}, fmt.Errorf("%w: amount %q", ErrCorrupt, a)
		}
	}
	return r, nil
}

// Now returns Redis' clock, the one record times are written with.
func (l *Ledger) Now(ctx context.Context) (time.Time, error) {
	t, err := l.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("ledger: redis time: %w", err)
	}
	return t, nil
}
