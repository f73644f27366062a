package scanner

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bidder/bidder/lock"
	"github.com/bidder/bidder/worker"
)

// The asynq types of the scanner's tasks.
const (
	TypeScan  = "scan:run"
	TypeTrack = "track:run" // ask after placed bids' outcomes (TrackHandler)
)

const (
	// DefaultScanMaxRetry bounds asynq retries of one slot's scan: the next
	// slot scans from the same cursor anyway.
	DefaultScanMaxRetry = 3
	// DefaultScanTimeout is the asynq timeout of one scan task. The page
	// bound ends a scan well before it.
	DefaultScanTimeout = 5 * time.Minute
	// maxScanPayload bounds what the handler will decode.
	maxScanPayload = 4 << 10
)

// ErrBadPayload: the scan task cannot be processed as sent; it is archived.
var ErrBadPayload = errors.New("scanner: bad scan task payload")

// ScanPayload is the scan task's body, and the tracker task's.
type ScanPayload struct {
	Marketplace string `json:"marketplace"`
	Slot        int64  `json:"slot"` // slot start, Unix seconds
}

// ScanTaskID names the scan of one marketplace's slot. Every instance that
// enqueues the same slot builds the same ID, so asynq accepts one and answers
// the others with ErrTaskIDConflict.
func ScanTaskID(marketplaceID string, slotStart time.Time) string {
	return "scan:" + marketplaceID + ":" + strconv.FormatInt(slotStart.Unix(), 10)
}

// NewScanTask builds the scan task of a slot. retention keeps its ID taken
// after it completes; it must reach past the slot's end (plus clock skew
// between instances), or a late instance would enqueue the slot again.
func NewScanTask(marketplaceID string, slotStart time.Time, retention time.Duration, opts ...asynq.Option) (*asynq.Task, error) {
	return newSlotTask(TypeScan, ScanTaskID(marketplaceID, slotStart), marketplaceID, slotStart, retention, opts)
}

// TrackTaskID names the tracker run of one marketplace's slot, as
// ScanTaskID does a scan's.
func TrackTaskID(marketplaceID string, slotStart time.Time) string {
	return "track:" + marketplaceID + ":" + strconv.FormatInt(slotStart.Unix(), 10)
}

// NewTrackTask builds the tracker task of a slot; retention as for
// NewScanTask.
func NewTrackTask(marketplaceID string, slotStart time.Time, retention time.Duration, opts ...asynq.Option) (*asynq.Task, error) {
	return newSlotTask(TypeTrack, TrackTaskID(marketplaceID, slotStart), marketplaceID, slotStart, retention, opts)
}

func newSlotTask(typ, id, marketplaceID string, slotStart time.Time, retention time.Duration, opts []asynq.Option) (*asynq.Task, error) {
	if err := lock.ValidateMarketplaceID(marketplaceID); err != nil {
		return nil, fmt.Errorf("scanner: %s task: %w", typ, err)
	}
	b, err := json.Marshal(ScanPayload{Marketplace: marketplaceID, Slot: slotStart.Unix()})
	if err != nil {
		return nil, fmt.Errorf("scanner: encode %s task for %s: %w", typ, marketplaceID, err)
	}
	base := []asynq.Option{
		asynq.TaskID(id),
		asynq.Queue(worker.QueueScans),
		asynq.MaxRetry(DefaultScanMaxRetry),
		asynq.Timeout(DefaultScanTimeout),
		asynq.Retention(retention),
	}
	return asynq.NewTask(typ, b, append(base, opts...)...), nil
}

// DecodeScanPayload decodes and validates a scan task's payload.
func DecodeScanPayload(b []byte) (ScanPayload, error) {
	if len(b) == 0 || len(b) > maxScanPayload {
		return ScanPayload{}, fmt.Errorf("%w: %d bytes", ErrBadPayload, len(b))
	}
	var p ScanPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return ScanPayload{}, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	if err := lock.ValidateMarketplaceID(p.Marketplace); err != nil {
		return ScanPayload{}, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	return p, nil
}
