package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/internal/promx"
	"github.com/bidder/bidder/lock"
)

// State is where a posting's decision stands.
type State string

const (
	StateNone    State = "" // undecided: never claimed, or an attempt that placed nothing
	StateIntent  State = "intent"
	StatePlaced  State = "placed"
	StateSkipped State = "skipped"
	StateFailed  State = "failed"
	StateDryRun  State = "dry_run"
	StateParked  State = "parked" // cannot progress; waits for an operator's resume
	// Review: the rules proposed a bid a human must approve first.
	StateReview State = "review"
	// Approved: a reviewer approved the bid (perhaps edited); the next claim
	// sends it, whatever the rules say by then. Not final.
	StateApproved State = "approved"
	StateRejected State = "rejected" // a reviewer said no; final
	StateExpired  State = "expired"  // nobody reviewed it in time, or it closed first; final
)

// Final reports whether the posting is decided for good.
func (s State) Final() bool {
	return s == StatePlaced || s == StateSkipped || s == StateFailed || s == StateDryRun ||
		s == StateRejected || s == StateExpired
}

func (s State) valid() bool {
	return s == StateNone || s == StateIntent || s == StateParked || s == StateReview || s == StateApproved || s.Final()
}

var (
	// ErrStale: the writer no longer holds the posting's lock, or a newer
	// acquisition exists; nothing was written.
	ErrStale = errors.New("ledger: stale fencing token")
	// ErrDecided: the record is already final; nothing was written.
	ErrDecided = errors.New("ledger: posting already decided")
	// ErrPending: an earlier attempt's intent is unresolved: a bid may
	// exist. The error is a *PendingError.
	ErrPending = errors.New("ledger: earlier attempt unresolved")
	// ErrParked: the posting is parked; only Resume brings it back.
	ErrParked = errors.New("ledger: posting parked")
	// ErrNotParked: Resume found the posting not parked.
	ErrNotParked = errors.New("ledger: posting not parked")
	// ErrLocked: another worker holds the posting's lock; nothing was
	// written (Park does not park a posting someone is working on).
	ErrLocked = errors.New("ledger: posting locked by another worker")
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
	Key    string
	Holder string    // the acquisition that wrote the intent
	Token  int64     // its token
	At     time.Time // when it wrote the intent, by Redis' clock
	// Account that was to bid (agency mode; "" for a marketplace with one
	// account): the one to ask whether the bid exists.
	Account string
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("%s: %s: intent of %s (token %d) from %s", ErrPending, e.Key, e.Holder, e.Token, e.At.UTC().Format(time.RFC3339Nano))
}

func (e *PendingError) Is(target error) bool { return target == ErrPending }

// DefaultRetention is how long a record is kept.
const DefaultRetention = 30 * 24 * time.Hour

// DefaultKeyPrefix is the record key prefix.
const DefaultKeyPrefix = "bid_ledger"

// DefaultRecheck is how long after discovery (and after each check) the
// recovery pass looks again at a posting that is still undecided.
const DefaultRecheck = 10 * time.Minute

// Fence is the lock a write is made under (a *lock.Lock satisfies it).
type Fence interface {
	Key() string    // the lock key: a write is refused unless it holds Holder
	Holder() string // the holder name stored in the lock key
	Token() int64
}

// Record is one posting's decision.
type Record struct {
	State     State
	Token     int64     // token of the acquisition that wrote it
	At        time.Time // when it was written, by Redis' clock
	Holder    string    // the acquisition (lock holder) that wrote it
	SettledAt time.Time // intent: when none of its requests can be in flight
	BidID     string    // placed: the marketplace's bid ID
	Amount    float64   // placed, dry_run: the amount
	Currency  string    // placed, dry_run
	Rule      string    // skipped, failed: the rule or error class that decided
	Reason    string    // skipped, failed: human-readable reason
	Proposal  string    // dry_run: the proposal that would have been sent
	Dims      string    // placed: what reports group it by (rules.Dims.Encode)
	// Account (intent, placed) is the account that bid, where the
	// marketplace has several (agency mode); "" for one.
	Account string

	// Placed: what became of the bid (BidPending until the tracker or a
	// retract says otherwise) and since when.
	Outcome   BidOutcome
	OutcomeAt time.Time

	// Parked: what it held before (an intent: a bid may exist), since
	// when, and why.
	ParkedFrom State
	ParkedAt   time.Time
	ParkRule   string
	ParkReason string

	Discovered time.Time // when a scanner first recorded it (undecided only)

	// Review: until when a reviewer may act, and who did, when.
	ReviewUntil time.Time
	ReviewedBy  string
	ReviewedAt  time.Time
}

// Ledger reads and writes records. Safe for concurrent use.
type Ledger struct {
	rdb       redis.UniversalClient
	prefix    string
	locks     lock.Keys
	retention time.Duration
	recheck   time.Duration
	writes    *prometheus.CounterVec
	sc        scripts

	waitReplicas int
	waitTimeout  time.Duration
	notify       bool
	trackFirst   time.Duration
	tracked      map[string]bool
}

// Option configures a Ledger.
type Option func(*Ledger)

// WithRetention sets how long records live (default 30 days).
func WithRetention(d time.Duration) Option { return func(l *Ledger) { l.retention = d } }

// WithKeyPrefix sets the record key prefix (default "bid_ledger").
func WithKeyPrefix(p string) Option { return func(l *Ledger) { l.prefix = p } }

// WithHashTags puts each record in its posting's Redis Cluster slot; it must
// match the lock's setting.
func WithHashTags(on bool) Option { return func(l *Ledger) { l.locks.HashTags = on } }

// HashTags reports whether records sit in their posting's Cluster slot:
// a key outside that slot (another package's) cannot join their scripts.
func (l *Ledger) HashTags() bool { return l.locks.HashTags }

// WithLockPrefix sets the prefix of the lock keys the scripts check and
// take (default lock.DefaultKeyPrefix); it must match the lock Manager's.
func WithLockPrefix(p string) Option { return func(l *Ledger) { l.locks.Prefix = p } }

// WithRecheck sets how long after discovery, and after each look, the
// recovery pass checks a posting that is still undecided (default 10m).
func WithRecheck(d time.Duration) Option { return func(l *Ledger) { l.recheck = d } }

// WithWaitReplicas makes every write wait until n replicas have it, or
// timeout: WAIT n timeout is sent in the same pipeline right after the
// script (one round trip; on Cluster, to the master of the record's slot).
// An intent that fewer than n replicas acknowledged is an error
// (ErrReplicas): fail closed, no bid, since after a failover the new master
// might not have it. Other writes are not failed by a short count (the
// record exists on the master; if a failover loses a placed record, the
// intent it replaced is lost too or is still there, and reconciliation
// finds the bid): they are counted as "unreplicated". n <= 0 turns it off
// (the default). timeout must be positive and shorter than the client's
// read timeout. See docs/redis.md.
func WithWaitReplicas(n int, timeout time.Duration) Option {
	return func(l *Ledger) { l.waitReplicas, l.waitTimeout = n, timeout }
}

// WithNotifications makes the scripts that place a bid, send a posting to
// review or park it also append an event to the posting's outbox (OutboxKey),
// in the same script, for a notifier to deliver: an event exists exactly
// when its change does. Off by default: nothing reads the outbox.
func WithNotifications(on bool) Option { return func(l *Ledger) { l.notify = on } }

// WithRegisterer registers bidder_ledger_writes_total on r.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(l *Ledger) {
		if r != nil {
			l.writes = promx.Register(r, l.writes)
		}
	}
}

// New returns a Ledger on rdb.
func New(rdb redis.UniversalClient, opts ...Option) *Ledger {
	l := &Ledger{
		rdb:       rdb,
		prefix:    DefaultKeyPrefix,
		locks:     lock.Keys{Prefix: lock.DefaultKeyPrefix},
		retention: DefaultRetention,
		recheck:   DefaultRecheck,
		sc:        newScripts(),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bidder_ledger_writes_total",
			Help: "Ledger writes by result: ok, stale (refused: the writer lost its lock or a newer acquisition exists), decided (refused: already final), pending (refused: an earlier attempt is unresolved), parked, busy (another worker holds the lock), unreplicated (with wait_replicas: written, fewer replicas acknowledged it; an error for intents), error.",
		}, []string{"result"}),
	}
	for _, o := range opts {
		o(l)
	}
	for _, r := range []string{"ok", "stale", "decided", "pending", "parked", "busy", "unreplicated", "error"} {
		l.writes.WithLabelValues(r) // zero, not absent, before the first
	}
	if l.retention <= 0 {
		l.retention = DefaultRetention
	}
	if l.recheck <= 0 {
		l.recheck = DefaultRecheck
	}
	if l.locks.Prefix == "" {
		l.locks.Prefix = lock.DefaultKeyPrefix
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

// Recheck returns the recovery pass's recheck interval in force.
func (l *Ledger) Recheck() time.Duration { return l.recheck }

// Key is the record key of a posting.
func (l *Ledger) Key(marketplaceID, postingID string) string {
	if l.locks.HashTags {
		return l.prefix + ":{" + marketplaceID + ":" + postingID + "}"
	}
	return l.prefix + ":" + marketplaceID + ":" + postingID
}

// PayloadKey holds the task payload the scanner stored with an undecided
// posting (in the record's slot), until the posting is decided.
func (l *Ledger) PayloadKey(marketplaceID, postingID string) string {
	if l.locks.HashTags {
		return l.prefix + "_payload:{" + marketplaceID + ":" + postingID + "}"
	}
	return l.prefix + "_payload:" + marketplaceID + ":" + postingID
}

// OpenKey is the index of a marketplace's undecided postings that holds
// postingID: "bid_ledger_open:<marketplace>", or with hash tags one such
// index per Cluster slot, in the posting's slot so the scripts that decide
// a posting also remove it. Scores are when the recovery pass is due to
// look at a posting again (Redis ms).
func (l *Ledger) OpenKey(marketplaceID, postingID string) string {
	return l.prefix + "_open:" + marketplaceID + l.locks.Shard(marketplaceID, postingID)
}

// ReviewKey is the index of a marketplace's postings in review that holds
// postingID (per slot with hash tags, like OpenKey); scores are deadlines.
func (l *Ledger) ReviewKey(marketplaceID, postingID string) string {
	return l.prefix + "_review:" + marketplaceID + l.locks.Shard(marketplaceID, postingID)
}

// AuditKey is a posting's review audit log: who did what, when (a list of
// JSON entries, in the posting's slot).
func (l *Ledger) AuditKey(marketplaceID, postingID string) string {
	if l.locks.HashTags {
		return l.prefix + "_audit:{" + marketplaceID + ":" + postingID + "}"
	}
	return l.prefix + "_audit:" + marketplaceID + ":" + postingID
}

// ParkedKey is the index of a marketplace's parked postings that holds
// postingID (per slot with hash tags, like OpenKey); scores are when each
// was parked.
func (l *Ledger) ParkedKey(marketplaceID, postingID string) string {
	return l.prefix + "_parked:" + marketplaceID + l.locks.Shard(marketplaceID, postingID)
}

// PlacedKey is the index of a marketplace's placed bids whose outcome the
// tracker still polls (per slot with hash tags, like OpenKey); scores are
// when each is next due.
func (l *Ledger) PlacedKey(marketplaceID, postingID string) string {
	return l.prefix + "_placed:" + marketplaceID + l.locks.Shard(marketplaceID, postingID)
}

// BidsKey is the index of a marketplace's placed bids that holds
// postingID (per slot with hash tags, like OpenKey); scores are when each
// was placed. Entries older than the retention are trimmed as bids are
// added. Reports read it.
func (l *Ledger) BidsKey(marketplaceID, postingID string) string {
	return l.prefix + "_bids:" + marketplaceID + l.locks.Shard(marketplaceID, postingID)
}

// OutboxKey is the notification outbox that holds postingID's events (a
// list of JSON events, per slot with hash tags, like OpenKey).
func (l *Ledger) OutboxKey(marketplaceID, postingID string) string {
	return l.prefix + "_outbox:" + marketplaceID + l.locks.Shard(marketplaceID, postingID)
}

// OutboxKeys is every outbox of a marketplace: one, or one per Cluster slot
// with hash tags.
func (l *Ledger) OutboxKeys(marketplaceID string) []string {
	return l.indexKeys("outbox", marketplaceID)
}

// notifyArg is the scripts' marketplace argument for the outbox: "" when
// notifications are off.
func (l *Ledger) notifyArg(marketplaceID string) string {
	if !l.notify {
		return ""
	}
	return marketplaceID
}

// indexKeys is every key of one index of a marketplace: one, or one per
// Cluster slot with hash tags.
func (l *Ledger) indexKeys(kind, marketplaceID string) []string {
	base := l.prefix + "_" + kind + ":" + marketplaceID
	if !l.locks.HashTags {
		return []string{base}
	}
	keys := make([]string, lock.ClusterSlots)
	for i := range keys {
		keys[i] = base + ":" + lock.SlotTag(i)
	}
	return keys
}

// Get returns the posting's record; State is StateNone when it has none.
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

// Payload returns what the scanner stored with the posting at discovery (the
// bid task's payload), until the posting is decided; nil when there is none.
func (l *Ledger) Payload(ctx context.Context, marketplaceID, postingID string) ([]byte, error) {
	key := l.PayloadKey(marketplaceID, postingID)
	b, err := l.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: payload of %s: %w", key, err)
	}
	return b, nil
}

func parse(m map[string]string) (Record, error) {
	if len(m) == 0 {
		return Record{}, nil
	}
	r := Record{
		State:      State(m["s"]),
		Holder:     m["h"],
		BidID:      m["b"],
		Currency:   m["cur"],
		Rule:       m["rule"],
		Reason:     m["why"],
		Proposal:   m["txt"],
		Dims:       m["dim"],
		Account:    m["ac"],
		ReviewedBy: m["rvby"],
		ParkedFrom: State(m["ps"]),
		ParkRule:   m["prule"],
		ParkReason: m["pwhy"],
		Outcome:    BidOutcome(m["o"]),
	}
	if r.State == StatePlaced && r.Outcome == "" {
		r.Outcome = BidPending
	}
	if r.Holder == "" {
		r.Holder = m["w"] // records written before the holder field had its name
	}
	if !r.State.valid() || !r.ParkedFrom.valid() || !r.Outcome.valid() {
		return Record{}, fmt.Errorf("%w: state %q", ErrCorrupt, m["s"])
	}
	var err error
	if v := m["t"]; v != "" {
		if r.Token, err = strconv.ParseInt(v, 10, 64); err != nil {
			return Record{}, fmt.Errorf("%w: token %q", ErrCorrupt, v)
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"at", &r.At}, {"sa", &r.SettledAt}, {"pat", &r.ParkedAt}, {"d", &r.Discovered}, {"rvu", &r.ReviewUntil}, {"rvat", &r.ReviewedAt}, {"oa", &r.OutcomeAt}} {
		v := m[f.name]
		if v == "" {
			continue
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Record{}, fmt.Errorf("%w: %s %q", ErrCorrupt, f.name, v)
		}
		*f.dst = time.UnixMilli(ms)
	}
	switch {
	case r.State == StateParked && r.ParkedAt.IsZero(),
		r.State != StateNone && r.State != StateParked && r.At.IsZero():
		return Record{}, fmt.Errorf("%w: state %q without a time", ErrCorrupt, r.State)
	}
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

func ms(d time.Duration) int64 { return d.Milliseconds() }
