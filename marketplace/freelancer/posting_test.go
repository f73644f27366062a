package freelancer

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace"
)

// TestPostingReadsTheProjectAsItIsNow: Posting asks for exactly the one
// project and reports it open while active and closed once closed; a
// project the API does not know, or an ID that is not a project's, is an
// error (never "closed": the recovery pass ends reviews on closed only).
func TestPostingReadsTheProjectAsItIsNow(t *testing.T) {
	f := newFakeServer(t)
	f.add(project(41, 1_700_000_000))
	a := f.adapter(t, nil)

	p, err := a.Posting(ctx, "41")
	if err != nil || p.ID != "41" || p.Status != marketplace.StatusOpen || p.MarketplaceID != "freelancer" {
		t.Fatalf("active project: %+v, %v", p, err)
	}
	f.setStatus(41, "closed")
	if p, err = a.Posting(ctx, "41"); err != nil || p.Status != marketplace.StatusClosed {
		t.Fatalf("closed project: %+v, %v", p, err)
	}
	reqs := f.reqs()
	last := reqs[len(reqs)-1]
	if last.Method != http.MethodGet || last.URL.Path != pathProjects+"41/" || last.URL.RawQuery != "" {
		t.Errorf("request %s %s?%s", last.Method, last.URL.Path, last.URL.RawQuery)
	}

	_, err = a.Posting(ctx, "99")
	if !errors.Is(err, marketplace.ErrPermanent) || errors.Is(err, marketplace.ErrPostingClosed) {
		t.Errorf("unknown project: %v, want ErrPermanent", err)
	}
	n := len(f.reqs())
	for _, bad := range []string{"", "abc", "041", "-3", "4/../5"} {
		if _, err := a.Posting(ctx, bad); !errors.Is(err, marketplace.ErrPermanent) {
			t.Errorf("posting id %q: %v, want ErrPermanent", bad, err)
		}
	}
	if got := len(f.reqs()); got != n {
		t.Errorf("%d requests for IDs that are not project IDs", got-n)
	}
}

func FuzzDecodeProject(f *testing.F) {
	f.Add(int64(1), 200, []byte(`{"status":"success","result":{"id":1,"owner_id":2,"title":"t","status":"active","type":"fixed","currency":{"code":"USD"},"budget":{"minimum":10,"maximum":20},"time_submitted":1767225600}}`))
	f.Add(int64(1), 200, []byte(`{"status":"success","result":{"id":1,"owner_id":2,"title":"t","status":"closed","type":"hourly","currency":{"code":"EUR"},"budget":{"minimum":10},"time_submitted":"1767225600"}}`))
	f.Add(int64(1), 200, []byte(`{"status":"success","result":{"id":2,"status":"active"}}`))
	f.Add(int64(1), 404, []byte(`{"status":"error","error_code":"ProjectExceptionCodes.PROJECT_NOT_FOUND"}`))
	f.Add(int64(1), 429, []byte(`{"status":"error"}`))
	f.Fuzz(func(t *testing.T, id int64, status int, body []byte) {
		if id <= 0 {
			return
		}
		p, err := decodeProject("fl", "https://www.freelancer.com", id, status, http.Header{}, body, fuzzNow)
		checkClassified(t, err)
		if err != nil {
			return
		}
		switch {
		case status != 200:
			t.Fatalf("status %d decoded as a posting", status)
		case p.ID != strconv.FormatInt(id, 10):
			t.Fatalf("asked for %d, decoded %q", id, p.ID)
		case p.Status != marketplace.StatusOpen && p.Status != marketplace.StatusClosed:
			t.Fatalf("status %q", p.Status)
		case !strings.HasPrefix(p.URL, "https://www.freelancer.com/projects/"):
			t.Fatalf("url %q", p.URL)
		}
	})
}
