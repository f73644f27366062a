package scanner

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/bidder/bidder/lock"
)

// ErrBadSchedule is wrapped by every error about a schedule spec or a
// marketplace ID in the schedule config.
var ErrBadSchedule = errors.New("scanner: invalid schedule")

// MarketplaceSchedule is one marketplace's entry in the schedule config.
type MarketplaceSchedule struct {
	MarketplaceID string
	Spec          string // 5-field cron in UTC unless CRON_TZ= says otherwise, a descriptor (@hourly) or "@every <duration>"
	// Task is what runs each slot: TaskScan (also "") or TaskTrack.
	Task string
}

// The scheduled tasks.
const (
	TaskScan  = "scan"  // a scan task (TypeScan)
	TaskTrack = "track" // a tracker run (TypeTrack): ask after placed bids' outcomes
)

// key names the entry in the Scheduler: the marketplace for a scan (as it
// always was), "track:<marketplace>" for the tracker. Marketplace IDs never
// hold ':'.
func (e MarketplaceSchedule) key() string {
	if e.Task == TaskTrack {
		return TaskTrack + ":" + e.MarketplaceID
	}
	return e.MarketplaceID
}

// splitKey undoes key.
func splitKey(k string) (task, marketplaceID string) {
	if mp, ok := strings.CutPrefix(k, TaskTrack+":"); ok {
		return TaskTrack, mp
	}
	return TaskScan, k
}

// Slot is one activation period of a schedule: [Start, End). Every instance
// computes the same slots from the wall clock, which is what lets the slot
// start name the scan task (see ScanTaskID).
type Slot struct {
	Start time.Time
	End   time.Time
}

// Len is the slot's length.
func (s Slot) Len() time.Duration { return s.End.Sub(s.Start) }

// Schedule is a parsed spec. It is immutable and safe for concurrent use.
type Schedule struct {
	spec  string
	every time.Duration // > 0 for "@every"
	cron  cron.Schedule // otherwise
}

// The parser is built per call rather than kept in a package variable: it
// is cheap, and the package keeps no mutable globals.
func cronParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// maxPrevSearch bounds how far back Slot looks for the previous activation.
// robfig/cron gives up on Next after five years, so nothing older can exist.
const maxPrevSearch = 5 * 366 * 24 * time.Hour

// ParseSchedule parses a spec. "@every d" needs d to be a whole number of
// seconds, at least one: slots are named by their start in Unix seconds, so
// two sub-second slots would share a task ID.
func ParseSchedule(spec string) (Schedule, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return Schedule{}, fmt.Errorf("%w: empty spec", ErrBadSchedule)
	}
	if rest, ok := strings.CutPrefix(s, "@every"); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return Schedule{}, fmt.Errorf("%w: %q: %w", ErrBadSchedule, spec, err)
		}
		if d < time.Second || d%time.Second != 0 {
			return Schedule{}, fmt.Errorf("%w: %q: @every needs a whole number of seconds >= 1s, got %s", ErrBadSchedule, spec, d)
		}
		return Schedule{spec: s, every: d}, nil
	}
	expr := s
	if !strings.HasPrefix(s, "CRON_TZ=") && !strings.HasPrefix(s, "TZ=") {
		// robfig defaults to the process's local zone; instances in
		// different zones would then compute different slots and each
		// enqueue its own scan. UTC is the same everywhere.
		expr = "CRON_TZ=UTC " + s
	}
	c, err := cronParser().Parse(expr)
	if err != nil {
		return Schedule{}, fmt.Errorf("%w: %q: %w", ErrBadSchedule, spec, err)
	}
	if _, relative := c.(cron.ConstantDelaySchedule); relative {
		// "CRON_TZ=... @every 1m": robfig's @every counts from the call,
		// not from the epoch, so it cannot name a shared slot.
		return Schedule{}, fmt.Errorf("%w: %q: write @every without a time zone", ErrBadSchedule, spec)
	}
	// A spec like "0 0 30 2 *" parses but never fires; robfig's Next then
	// returns the zero time, which would make every slot computation wrong.
	if c.Next(time.Now()).IsZero() {
		return Schedule{}, fmt.Errorf("%w: %q: never fires", ErrBadSchedule, spec)
	}
	return Schedule{spec: s, cron: c}, nil
}

// String returns the spec as parsed (trimmed).
func (s Schedule) String() string { return s.spec }

// Slot returns the slot t falls in. For "@every d" slots are multiples of d
// since the Unix epoch, so every process agrees on them whenever it started
// (robfig's own @every counts from process start, which is exactly what
// multi-instance dedupe cannot use). For cron the slot starts at the most
// recent activation <= t and ends at the next one.
func (s Schedule) Slot(t time.Time) (Slot, error) {
	if s.every > 0 {
		d := int64(s.every / time.Second)
		sec := t.Unix()
		start := sec - ((sec%d)+d)%d // floor, also before 1970
		st := time.Unix(start, 0).In(t.Location())
		return Slot{Start: st, End: st.Add(s.every)}, nil
	}
	if s.cron == nil {
		return Slot{}, fmt.Errorf("%w: zero Schedule", ErrBadSchedule)
	}
	prev, err := s.prev(t)
	if err != nil {
		return Slot{}, err
	}
	next := s.cron.Next(prev)
	if next.IsZero() {
		return Slot{}, fmt.Errorf("%w: %q: no activation after %s", ErrBadSchedule, s.spec, prev)
	}
	return Slot{Start: prev, End: next}, nil
}

// prev finds the latest activation <= t. robfig/cron only computes Next, so
// it looks back over doubling windows until one holds an activation, then
// walks forward to the last one not after t.
func (s Schedule) prev(t time.Time) (time.Time, error) {
	t = t.Truncate(time.Second) // cron activations are whole seconds
	for back := time.Minute; back <= 2*maxPrevSearch; back *= 2 {
		n := s.cron.Next(t.Add(-back))
		if n.IsZero() || n.After(t) {
			continue
		}
		// The previous window held nothing, so this walk covers at most
		// the activations of one window; the cap only guards against a
		// schedule implementation that does not move forward.
		for i := 0; i < 1_000_000; i++ {
			nn := s.cron.Next(n)
			if nn.IsZero() || nn.After(t) {
				return n, nil
			}
			if !nn.After(n) {
				break
			}
			n = nn
		}
		return time.Time{}, fmt.Errorf("%w: %q: cannot find the activation before %s", ErrBadSchedule, s.spec, t)
	}
	return time.Time{}, fmt.Errorf("%w: %q: no activation in the five years before %s", ErrBadSchedule, s.spec, t)
}

// ValidateSchedules parses every entry and checks marketplace IDs, naming
// the marketplace and the spec of the first bad entry. Config loading should
// call it so that a bad schedule stops start-up. The map's keys are the
// marketplace for scans and "track:<marketplace>" for tracker runs.
func ValidateSchedules(list []MarketplaceSchedule) (map[string]Schedule, error) {
	out := make(map[string]Schedule, len(list))
	for _, e := range list {
		sch, err := parseEntry(e)
		if err != nil {
			return nil, err
		}
		if _, dup := out[e.key()]; dup {
			return nil, fmt.Errorf("%w: marketplace %q: listed twice", ErrBadSchedule, e.MarketplaceID)
		}
		out[e.key()] = sch
	}
	return out, nil
}

func parseEntry(e MarketplaceSchedule) (Schedule, error) {
	if err := lock.ValidateMarketplaceID(e.MarketplaceID); err != nil {
		return Schedule{}, fmt.Errorf("%w: marketplace %q: %w", ErrBadSchedule, e.MarketplaceID, err)
	}
	if e.Task != "" && e.Task != TaskScan && e.Task != TaskTrack {
		return Schedule{}, fmt.Errorf("%w: marketplace %q: unknown task %q", ErrBadSchedule, e.MarketplaceID, e.Task)
	}
	sch, err := ParseSchedule(e.Spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("marketplace %q: %w", e.MarketplaceID, err)
	}
	return sch, nil
}
