package notify

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/bidder/bidder/internal/config"
)

// TestBudgetSpentDelivered: the one budget_spent event of a window reaches
// each channel once, with when bidding resumes.
func TestBudgetSpentDelivered(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	until := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	for range 3 {
		if err := e.led.NotifyBudgetSpent(ctx, mp, until); err != nil {
			t.Fatal(err)
		}
	}
	e.serve(t, NewHandler(e.rdb, e.cfg, WithMetrics(e.metrics)))
	if err := NewSweeper(e.rdb, e.client, e.led, e.cfg, e.metrics, nil).Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitDelivered(t, 1)
	want := "bid budget of m spent; bidding resumes at 2030-01-02 15:00 UTC"
	if got := e.slack.got(); len(got) != 1 || got[0] != want {
		t.Fatalf("slack got %q, want %q", got, want)
	}
	_, ok, _, _ := e.hook.snapshot()
	if ok["budget_spent:m:1893596400"] != 1 || len(ok) != 1 {
		t.Fatalf("webhook got %v", ok)
	}
}

// TestConfigKnowsEveryEvent: notify.events in config accepts each kind the
// notifier sends (the two lists live in packages that cannot share one).
func TestConfigKnowsEveryEvent(t *testing.T) {
	doc := "notify: {events: [" + strings.Join(Events, ", ") + "]}\n"
	_, err := config.Load(config.Options{Path: "b.yaml", LookupEnv: func(string) (string, bool) { return "", false },
		ReadFile: func(p string) ([]byte, error) {
			if p == "b.yaml" {
				return []byte(doc), nil
			}
			return nil, fs.ErrNotExist
		}})
	if err != nil {
		t.Fatal(err)
	}
}
