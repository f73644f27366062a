package scanner

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseScheduleRejects(t *testing.T) {
	for _, spec := range []string{
		"", "   ", "@every", "@every 0s", "@every -5s", "@every 1500ms", "@every 500ms",
		"@every banana", "* * *", "61 * * * *", "0 0 30 2 *", "CRON_TZ=Nowhere/City * * * * *",
		"CRON_TZ=UTC @every 1m", "@yearly-ish", "* * * * * *",
	} {
		if _, err := ParseSchedule(spec); !errors.Is(err, ErrBadSchedule) {
			t.Errorf("ParseSchedule(%q) = %v, want ErrBadSchedule", spec, err)
		}
	}
}

func TestEverySlotsAreEpochAligned(t *testing.T) {
	sch, err := ParseSchedule("@every 7s")
	if err != nil {
		t.Fatal(err)
	}
	// 7s does not divide a day, so Go's Time.Truncate (aligned to year 1)
	// would disagree with the Unix epoch alignment asked for here.
	for _, sec := range []int64{0, 6, 7, 1_764_237_601, 1_764_237_606, -1, -7, -8} {
		now := time.Unix(sec, 400_000_000)
		slot, err := sch.Slot(now)
		if err != nil {
			t.Fatal(err)
		}
		st := slot.Start.Unix()
		if st%7 != 0 || st > sec || sec-st >= 7 || slot.Len() != 7*time.Second {
			t.Errorf("Slot(%d) = [%d, %s) len %s", sec, st, slot.End, slot.Len())
		}
	}
	// Two "processes" started at different times agree on the slot.
	a, _ := sch.Slot(time.Unix(1_764_237_602, 0))
	b, _ := sch.Slot(time.Unix(1_764_237_607, 999))
	if !a.Start.Equal(b.Start) {
		t.Errorf("slots differ: %s vs %s", a.Start, b.Start)
	}
}

func TestCronSlotIsLatestActivation(t *testing.T) {
	cases := []struct {
		spec       string
		now        string
		start, end string
	}{
		{"*/15 * * * *", "2026-11-27T10:22:13Z", "2026-11-27T10:15:00Z", "2026-11-27T10:30:00Z"},
		{"*/15 * * * *", "2026-11-27T10:30:00Z", "2026-11-27T10:30:00Z", "2026-11-27T10:45:00Z"},
		{"0 9 * * 1", "2026-11-27T10:00:00Z", "2026-11-23T09:00:00Z", "2026-11-30T09:00:00Z"},  // weekly, Monday
		{"0 0 29 2 *", "2026-11-27T10:00:00Z", "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"}, // leap day
		{"@hourly", "2026-11-27T10:59:59Z", "2026-11-27T10:00:00Z", "2026-11-27T11:00:00Z"},
		{"* 9 * * *", "2026-11-27T15:00:00Z", "2026-11-27T09:59:00Z", "2026-11-28T09:00:00Z"},
		{"0 6 * * *", "2026-11-27T06:30:00Z", "2026-11-27T06:00:00Z", "2026-11-28T06:00:00Z"}, // UTC, whatever time.Local is
		{"CRON_TZ=Europe/Berlin 0 6 * * *", "2026-11-27T06:30:00Z", "2026-11-27T05:00:00Z", "2026-11-28T05:00:00Z"},
	}
	for _, c := range cases {
		sch, err := ParseSchedule(c.spec)
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		now, _ := time.Parse(time.RFC3339, c.now)
		slot, err := sch.Slot(now)
		if err != nil {
			t.Fatalf("%q at %s: %v", c.spec, c.now, err)
		}
		ws, _ := time.Parse(time.RFC3339, c.start)
		we, _ := time.Parse(time.RFC3339, c.end)
		if !slot.Start.Equal(ws) || !slot.End.Equal(we) {
			t.Errorf("%q at %s: slot [%s, %s), want [%s, %s)", c.spec, c.now, slot.Start.UTC(), slot.End.UTC(), ws, we)
		}
	}
}

func TestValidateSchedulesNamesMarketplaceAndSpec(t *testing.T) {
	_, err := ValidateSchedules([]MarketplaceSchedule{
		{MarketplaceID: "upwork", Spec: "@every 30s"},
		{MarketplaceID: "freelancer", Spec: "every five minutes"},
	})
	if !errors.Is(err, ErrBadSchedule) || !strings.Contains(err.Error(), `"freelancer"`) || !strings.Contains(err.Error(), `"every five minutes"`) {
		t.Fatalf("err = %v, want ErrBadSchedule naming freelancer and its spec", err)
	}
	for _, bad := range [][]MarketplaceSchedule{
		{{MarketplaceID: "Up:Work", Spec: "@every 1s"}},
		{{MarketplaceID: "a", Spec: "@every 1s"}, {MarketplaceID: "a", Spec: "@every 2s"}},
	} {
		if _, err := ValidateSchedules(bad); !errors.Is(err, ErrBadSchedule) {
			t.Errorf("ValidateSchedules(%v) = %v, want ErrBadSchedule", bad, err)
		}
	}
	got, err := ValidateSchedules([]MarketplaceSchedule{{MarketplaceID: "upwork", Spec: " @every 1m "}})
	if err != nil || got["upwork"].String() != "@every 1m" {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestScanTaskIDAndPayload(t *testing.T) {
	slot := time.Unix(1_764_237_600, 0)
	task, err := NewScanTask("upwork", slot, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if id := ScanTaskID("upwork", slot); id != "scan:upwork:1764237600" {
		t.Errorf("ScanTaskID = %q", id)
	}
	p, err := DecodeScanPayload(task.Payload())
	if err != nil || p.Marketplace != "upwork" || p.Slot != slot.Unix() {
		t.Fatalf("payload round trip: %+v, %v", p, err)
	}
	for _, b := range []string{"", "{", `{"marketplace":"UP{}","slot":1}`, `{"slot":1}`, strings.Repeat("x", 5000)} {
		if _, err := DecodeScanPayload([]byte(b)); !errors.Is(err, ErrBadPayload) {
			t.Errorf("DecodeScanPayload(%.20q) = %v, want ErrBadPayload", b, err)
		}
	}
	if _, err := NewScanTask("bad{id}", slot, time.Minute); err == nil {
		t.Error("NewScanTask accepted a marketplace ID with braces")
	}
}
