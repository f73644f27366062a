package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Windows are the UTC hour and UTC day a moment falls in, as the shared
// per-marketplace caps count them (bids here, proposal tokens in
// worker/proposal): keys <prefix>:{<marketplace>}:h:<unix hour> and
// ...:d:<unix day>. The braces are a Cluster hash tag, so a script can
// check both windows, and other keys with Base, in one slot. Windows are
// whole hours and days since the Unix epoch; the key names use the same
// numbers, so every instance agrees on them.
type Windows struct {
	Base            string // "<prefix>:{<marketplace>}:"
	HourKey, DayKey string
	HourEnd, DayEnd time.Time
}

// WindowsAt returns the windows at now.
func WindowsAt(prefix, marketplaceID string, now time.Time) Windows {
	now = now.UTC()
	hour, day := now.Unix()/3600, now.Unix()/86400
	w := Windows{Base: prefix + ":{" + marketplaceID + "}:"}
	w.HourKey = w.Base + "h:" + strconv.FormatInt(hour, 10)
	w.DayKey = w.Base + "d:" + strconv.FormatInt(day, 10)
	w.HourEnd = time.Unix((hour+1)*3600, 0).UTC()
	w.DayEnd = time.Unix((day+1)*86400, 0).UTC()
	return w
}

// TTLs returns how long the hour and the day key must live from now, in
// milliseconds: to the window's end plus grace, so that an instance whose
// clock lags another's by less than grace still counts into the same key
// instead of finding it expired and starting again from zero.
func (w Windows) TTLs(now time.Time, grace time.Duration) (hourMillis, dayMillis int64) {
	return (w.HourEnd.Sub(now) + grace).Milliseconds(), (w.DayEnd.Sub(now) + grace).Milliseconds()
}

// CheckWindowKeys reports why prefix or marketplaceID cannot make window
// keys: a brace would change which part is the hash tag.
func CheckWindowKeys(prefix, marketplaceID string) error {
	switch {
	case strings.ContainsAny(prefix, "{}"):
		return fmt.Errorf("key prefix %q must not contain braces", prefix)
	case marketplaceID == "" || strings.ContainsAny(marketplaceID, "{}"):
		return fmt.Errorf("marketplace ID %q must be non-empty and without braces", marketplaceID)
	}
	return nil
}
