package proposal

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/bidder/bidder/lock"
)

//go:embed store_claim.lua
var claimLua string

var claimScript = redis.NewScript(claimLua)

// Store defaults.
const (
	DefaultStorePrefix = "proposal"
	// DefaultRetention matches the ledger's default retention: a proposal
	// must outlive every retry and reconciliation of its posting.
	DefaultRetention = 720 * time.Hour
)

var (
	// ErrStoreUnavailable wraps every Redis failure of the Store: without
	// the stored text a retry could send another one, so do not bid; retry.
	ErrStoreUnavailable = errors.New("proposal: store unavailable")
	// ErrCorrupt: the stored record does not decode. What was sent before
	// is unknown; an operator must look (and delete the key to write anew).
	ErrCorrupt = errors.New("proposal: stored record unreadable")
)

// Store keeps each posting's proposal in Redis, so that every attempt, a
// reconciliation and a second worker send the text the first attempt wrote.
// Safe for concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	hashTags  bool
	retention time.Duration
	metrics   *Metrics
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithStorePrefix sets the key prefix (default "proposal").
func WithStorePrefix(p string) StoreOption { return func(s *Store) { s.prefix = p } }

// WithHashTags puts a posting's proposal in its Cluster slot, next to its
// lock and ledger record (redis.hash_tags; all instances must agree).
func WithHashTags(on bool) StoreOption { return func(s *Store) { s.hashTags = on } }

// WithRetention sets how long a proposal is kept (default 720h); use the
// ledger's retention.
func WithRetention(d time.Duration) StoreOption {
	return func(s *Store) {
		if d > 0 {
			s.retention = d
		}
	}
}

// WithStoreMetrics counts outcomes into m (bidder_proposals_total).
func WithStoreMetrics(m *Metrics) StoreOption { return func(s *Store) { s.metrics = m } }

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, opts ...StoreOption) *Store {
	s := &Store{rdb: rdb, prefix: DefaultStorePrefix, retention: DefaultRetention}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Key is the Redis key of a posting's proposal: <prefix>:<marketplace>:<posting>,
// or with hash tags <prefix>:{<marketplace>:<posting>}, the lock's tag.
func (s *Store) Key(marketplaceID, postingID string) string {
	return s.prefix + ":" + lock.Keys{HashTags: s.hashTags}.Tag(marketplaceID, postingID)
}

// Get returns the stored proposal of a posting, if any.
func (s *Store) Get(ctx context.Context, marketplaceID, postingID string) (Proposal, bool, error) {
	if err := s.check(); err != nil {
		return Proposal{}, false, err
	}
	raw, err := s.rdb.Get(ctx, s.Key(marketplaceID, postingID)).Result()
	if errors.Is(err, redis.Nil) {
		return Proposal{}, false, nil
	}
	if err != nil {
		return Proposal{}, false, fmt.Errorf("%w: get %s:%s: %w", ErrStoreUnavailable, marketplaceID, postingID, err)
	}
	p, err := decode(raw)
	if err != nil {
		return Proposal{}, false, fmt.Errorf("%s:%s: %w", marketplaceID, postingID, err)
	}
	return p, true, nil
}

// GetOrCreate returns the posting's stored proposal, or writes one with w,
// stores it unless another attempt stored one meanwhile, and returns the
// one stored. Two callers racing for one posting both get the same text.
//
// Errors: ErrWait (a *WaitError) from w, nothing stored: retry after
// WaitError.After, uncounted. ErrStoreUnavailable: Redis failed, retry.
// ErrCorrupt, ErrInvalidRequest: do not bid. The caller's context ending
// returns its error.
func (s *Store) GetOrCreate(ctx context.Context, w Writer, req Request) (Proposal, error) {
	if err := s.check(); err != nil {
		return Proposal{}, err
	}
	if err := checkRequest(req); err != nil {
		return Proposal{}, err
	}
	mp, id := req.Posting.MarketplaceID, req.Posting.ID
	// The template costs nothing to render, so it skips the read: the
	// claim below returns a stored text anyway. A model call is worth a
	// round trip to avoid.
	if _, cheap := w.(*TemplateWriter); !cheap {
		if p, ok, err := s.Get(ctx, mp, id); err != nil || ok {
			if ok {
				s.metrics.count(mp, p.Source, ResultReused)
			}
			return p, err
		}
	}
	p, err := w.Write(ctx, req)
	if err != nil {
		var we *WaitError
		if errors.As(err, &we) {
			s.metrics.count(mp, SourceNone, we.Result)
		}
		return Proposal{}, err
	}
	if p.Text == "" || !utf8.ValidString(p.Text) {
		// JSON would replace bad bytes: the stored text would not be the
		// one returned now.
		return Proposal{}, fmt.Errorf("%w: writer returned an empty or invalid UTF-8 text for %s:%s", ErrInvalidRequest, mp, id)
	}
	enc, err := json.Marshal(p)
	if err != nil {
		return Proposal{}, fmt.Errorf("proposal: encode for %s:%s: %w", mp, id, err)
	}
	winner, err := claimScript.Run(ctx, s.rdb, []string{s.Key(mp, id)}, enc, s.retention.Milliseconds()).Text()
	if err != nil {
		return Proposal{}, fmt.Errorf("%w: store %s:%s: %w", ErrStoreUnavailable, mp, id, err)
	}
	if winner == string(enc) {
		result := ResultGenerated
		if p.Fallback != "" {
			result = p.Fallback
		}
		s.metrics.count(mp, p.Source, result)
		return p, nil
	}
	stored, err := decode(winner)
	if err != nil {
		return Proposal{}, fmt.Errorf("%s:%s: %w", mp, id, err)
	}
	s.metrics.count(mp, stored.Source, ResultReused)
	return stored, nil
}

func (s *Store) check() error {
	switch {
	case s == nil || s.rdb == nil:
		return fmt.Errorf("%w: no Redis client", ErrStoreUnavailable)
	case strings.ContainsAny(s.prefix, "{}") || s.prefix == "":
		return fmt.Errorf("%w: key prefix %q must be non-empty and without braces", ErrInvalidRequest, s.prefix)
	}
	return nil
}

func decode(raw string) (Proposal, error) {
	var p Proposal
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return Proposal{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if p.Text == "" || (p.Source != SourceTemplate && p.Source != SourceModel) {
		return Proposal{}, fmt.Errorf("%w: no text or unknown source %q", ErrCorrupt, p.Source)
	}
	return p, nil
}
