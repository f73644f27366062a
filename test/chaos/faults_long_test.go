package chaos

import (
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	got, err := ParseSchedule("freeze_worker_lease@1s, marketplace_outage:401-bids@55s+30s,replica_down@8s+45s")
	if err != nil {
		t.Fatal(err)
	}
	want := []Scheduled{
		{Kind: FaultFreezeWorkerLease, Variant: "", At: time.Second},
		{Kind: FaultMarketplaceOutage, Variant: "401-bids", At: 55 * time.Second, For: 30 * time.Second},
		{Kind: FaultReplicaDown, Variant: "stop", At: 8 * time.Second, For: 45 * time.Second},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if s := scheduleString(got); s != "freeze_worker_lease@1s,marketplace_outage:401-bids@55s+30s,replica_down:stop@8s+45s" {
		t.Fatalf("round trip: %s", s)
	}
	for _, bad := range []string{"kill_worker@1s", "marketplace_outage:500@1s", "freeze_worker_lease", "replica_down@x", "replica_down@1s+0s"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
	m, err := ParseMix("default,freeze_worker_lease=2")
	if err != nil || m[FaultFreezeWorkerLease] != 2 || m[FaultKillWorker] != DefaultMix[FaultKillWorker] {
		t.Fatalf("ParseMix(default,...) = %v, %v", m, err)
	}
}
