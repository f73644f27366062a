package scanner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// DefaultStatusKeyPrefix names where each marketplace's last scan is told,
// for the status page: "bid_scan_status:{<marketplace>}", a hash.
const DefaultStatusKeyPrefix = "bid_scan_status"

// ScanStatus is what the last scan of a marketplace reported.
type ScanStatus struct {
	At       time.Time // when it ended
	Result   string
	Seen     int
	Enqueued int
	Newest   time.Time // posted_at of the newest posting it saw (zero: none)
}

func statusKey(marketplaceID string) string {
	return DefaultStatusKeyPrefix + ":{" + marketplaceID + "}"
}

// writeStatus records sum as the marketplace's last scan (one write per
// scan; a failed write only dims the status page).
func (h *ScanHandler) writeStatus(ctx context.Context, sum Summary, newest time.Time) {
	fields := []any{"at", h.o.now().UnixMilli(), "result", sum.Result, "seen", sum.Seen, "enqueued", sum.Enqueued}
	if !newest.IsZero() {
		fields = append(fields, "newest", newest.UnixMilli())
	}
	if err := h.rdb.HSet(ctx, statusKey(sum.Marketplace), fields...).Err(); err != nil {
		h.o.log.Debug("scan status not written", zap.Error(err))
	}
}

// ReadStatus returns a marketplace's last scan; ok is false before the
// first.
func ReadStatus(ctx context.Context, rdb redis.UniversalClient, marketplaceID string) (ScanStatus, bool, error) {
	m, err := rdb.HGetAll(ctx, statusKey(marketplaceID)).Result()
	if errors.Is(err, redis.Nil) || err == nil && len(m) == 0 {
		return ScanStatus{}, false, nil
	}
	if err != nil {
		return ScanStatus{}, false, fmt.Errorf("scanner: scan status of %s: %w", marketplaceID, err)
	}
	ms := func(k string) time.Time {
		n, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil || n == 0 {
			return time.Time{}
		}
		return time.UnixMilli(n)
	}
	st := ScanStatus{At: ms("at"), Result: m["result"], Newest: ms("newest")}
	st.Seen, _ = strconv.Atoi(m["seen"])
	st.Enqueued, _ = strconv.Atoi(m["enqueued"])
	return st, true, nil
}
