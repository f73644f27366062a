package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/marketplace"
)

// Task types and queues.
const (
	TypeBid    = "bid:place"
	QueueBids  = "bids"
	QueueScans = "scans" // the scanner's task queue; the worker server serves both
	// MaxPayloadBytes bounds what the handler will decode.
	MaxPayloadBytes = 256 << 10
	// DefaultMaxRetry is how many counted failures a posting survives
	// before the handler parks it. Waiting (lock busy, rate limits,
	// settling, conditions of the world) does not count.
	DefaultMaxRetry = 10
	// TaskMaxRetry is the asynq MaxRetry of a bid task: so high that asynq
	// never archives one itself (its recoverer does, without asking the
	// handler, once a task's retries are spent, and an archived task whose
	// posting has no final record is a lost posting). The handler decides
	// when a posting gives up, and parks it.
	TaskMaxRetry = math.MaxInt32
)

// MarketplaceQueue is the bid queue of one marketplace, for deployments
// that spread queues over Redis Cluster nodes (asynq keeps each queue in one
// slot): "bids:<marketplace>". Servers must then serve every such queue.
func MarketplaceQueue(marketplaceID string) string { return QueueBids + ":" + marketplaceID }

// MarketplaceScanQueue is a marketplace's own queue for its scan and
// tracker tasks (with queue_per_marketplace): only workers configured for
// the marketplace serve it, so a fleet without its adapter never takes
// (and archives) them.
func MarketplaceScanQueue(marketplaceID string) string { return QueueScans + ":" + marketplaceID }

// ErrBadPayload: the task cannot be processed as sent; it is archived.
var ErrBadPayload = errors.New("worker: bad bid task payload")

// ErrNewerPayload: the payload has a version this worker does not read (a
// newer bidder enqueued it); the task is left for a worker that does.
var ErrNewerPayload = errors.New("worker: bid task payload of a newer version")

// BidPayload is the bid task's body: the posting as the scanner saw it, so
// the worker needs no extra marketplace call.
type BidPayload struct {
	Version int                 `json:"v"`
	Posting marketplace.Posting `json:"posting"`
}

const payloadVersion = 1

// BidTaskID is the asynq task ID of a posting's bid task: one task per
// posting, so enqueueing it again is refused by asynq (ErrTaskIDConflict).
// Braces, which asynq forbids (Redis Cluster hash tags), and '%' are
// percent-encoded; marketplace IDs cannot contain ':'.
func BidTaskID(marketplaceID, postingID string) string {
	if strings.ContainsAny(postingID, "{}%") {
		postingID = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D").Replace(postingID)
	}
	return "bid:" + marketplaceID + ":" + postingID
}

// NewBidTask builds the bid task of a posting with its task ID, queue and
// retry limit. Callers add asynq.Retention to keep the ID taken after the
// task completes.
func NewBidTask(p marketplace.Posting, opts ...asynq.Option) (*asynq.Task, error) {
	if err := lock.ValidateIDs(p.MarketplaceID, p.ID); err != nil {
		return nil, err
	}
	b, err := json.Marshal(BidPayload{Version: payloadVersion, Posting: p})
	if err != nil {
		return nil, fmt.Errorf("worker: encode bid task for %s:%s: %w", p.MarketplaceID, p.ID, err)
	}
	if len(b) > MaxPayloadBytes {
		return nil, fmt.Errorf("%w: %s:%s encodes to %d bytes (max %d)", ErrBadPayload, p.MarketplaceID, p.ID, len(b), MaxPayloadBytes)
	}
	base := []asynq.Option{
		asynq.TaskID(BidTaskID(p.MarketplaceID, p.ID)),
		asynq.Queue(QueueBids),
		asynq.MaxRetry(TaskMaxRetry),
	}
	return asynq.NewTask(TypeBid, b, append(base, opts...)...), nil
}

// DecodeBidPayload decodes and validates a bid task's payload.
func DecodeBidPayload(b []byte) (marketplace.Posting, error) {
	if len(b) == 0 {
		return marketplace.Posting{}, fmt.Errorf("%w: empty", ErrBadPayload)
	}
	if len(b) > MaxPayloadBytes {
		return marketplace.Posting{}, fmt.Errorf("%w: %d bytes (max %d)", ErrBadPayload, len(b), MaxPayloadBytes)
	}
	var p BidPayload
	if err := json.Unmarshal(b, &p); err != nil {
		// A newer version may have changed the shape; say so if it did.
		var env struct {
			Version int `json:"v"`
		}
		if json.Unmarshal(b, &env) == nil && env.Version > payloadVersion {
			return marketplace.Posting{}, fmt.Errorf("%w: version %d, this worker reads up to %d", ErrNewerPayload, env.Version, payloadVersion)
		}
		return marketplace.Posting{}, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	if p.Version > payloadVersion {
		// Name the marketplace if the newer format still says it, for logs.
		mp := p.Posting.MarketplaceID
		if lock.ValidateMarketplaceID(mp) != nil {
			mp = ""
		}
		return marketplace.Posting{MarketplaceID: mp},
			fmt.Errorf("%w: version %d, this worker reads up to %d", ErrNewerPayload, p.Version, payloadVersion)
	}
	if p.Version != payloadVersion {
		return marketplace.Posting{}, fmt.Errorf("%w: version %d, this worker reads %d", ErrBadPayload, p.Version, payloadVersion)
	}
	if err := lock.ValidateIDs(p.Posting.MarketplaceID, p.Posting.ID); err != nil {
		return marketplace.Posting{}, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	return p.Posting, nil
}
