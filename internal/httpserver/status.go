package httpserver

import (
	"context"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Status is what the status page shows, read from the gathered metrics so
// that it can never disagree with /metrics.
type Status struct {
	Info         map[string]string
	Ready        string // "ready" or the reason not
	Marketplaces []MarketplaceStatus
	Duplicates   []Count // by layer
	Lock         []Count // acquire results
	Generated    time.Time
}

// MarketplaceStatus is one marketplace's row.
type MarketplaceStatus struct {
	ID                            string
	Placed, Skipped, Failed, Dry  float64
	Errors, Seen, Enqueued, Scans float64
}

// Count is one labelled counter value.
type Count struct {
	Label string
	Value float64
}

// ReadStatus builds a Status from metric families.
func ReadStatus(families []*dto.MetricFamily) Status {
	var st Status
	mps := map[string]*MarketplaceStatus{}
	mp := func(id string) *MarketplaceStatus {
		if mps[id] == nil {
			mps[id] = &MarketplaceStatus{ID: id}
		}
		return mps[id]
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue()
			l := labels(m)
			switch f.GetName() {
			case "bidder_bids_total":
				s := mp(l["marketplace"])
				switch l["outcome"] {
				case "placed":
					s.Placed += v
				case "skipped":
					s.Skipped += v
				case "failed":
					s.Failed += v
				case "dry_run":
					s.Dry += v
				}
			case "bidder_bid_errors_total":
				mp(l["marketplace"]).Errors += v
			case "bidder_postings_seen_total":
				mp(l["marketplace"]).Seen += v
			case "bidder_postings_enqueued_total":
				mp(l["marketplace"]).Enqueued += v
			case "bidder_scan_runs_total":
				mp(l["marketplace"]).Scans += v
			case "bidder_duplicates_prevented_total":
				st.Duplicates = append(st.Duplicates, Count{l["layer"], v})
			case "bidder_lock_acquire_total":
				st.Lock = append(st.Lock, Count{l["result"], v})
			}
		}
	}
	for _, s := range mps {
		st.Marketplaces = append(st.Marketplaces, *s)
	}
	sort.Slice(st.Marketplaces, func(i, j int) bool { return st.Marketplaces[i].ID < st.Marketplaces[j].ID })
	byLabel := func(a, b Count) int {
		if a.Label < b.Label {
			return -1
		}
		if a.Label > b.Label {
			return 1
		}
		return 0
	}
	slices.SortFunc(st.Duplicates, byLabel)
	slices.SortFunc(st.Lock, byLabel)
	return st
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	fams, err := s.opts.Gatherer.Gather()
	if err != nil && len(fams) == 0 {
		http.Error(w, "cannot gather metrics", http.StatusInternalServerError)
		return
	}
	st := ReadStatus(fams)
	st.Info = s.opts.Info
	st.Generated = time.Now().UTC()
	st.Ready = "ready"
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		if err := s.opts.Ready(ctx); err != nil {
			st.Ready = "not ready: " + err.Error()
		}
		cancel()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := statusPage.Execute(w, struct {
		Status
		Monitoring bool
	}{st, s.opts.Monitoring != nil}); err != nil {
		s.opts.Logger.Warn("status page", zapErr(err))
	}
}

var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>bidder</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.3em .8em;text-align:right}
th:first-child,td:first-child{text-align:left}
.ok{color:#070}.bad{color:#b00}
</style></head><body>
<h1>bidder</h1>
<p>{{range $k, $v := .Info}}<b>{{$k}}</b>: {{$v}} &nbsp; {{end}}</p>
<p class="{{if eq .Ready "ready"}}ok{{else}}bad{{end}}">{{.Ready}}</p>
<h2>Bids by marketplace</h2>
<table><tr><th>marketplace</th><th>placed</th><th>skipped</th><th>failed</th><th>dry run</th><th>errors (retried)</th><th>postings seen</th><th>enqueued</th><th>scans</th></tr>
{{range .Marketplaces}}<tr data-marketplace="{{.ID}}"><td>{{.ID}}</td><td data-metric="placed">{{.Placed}}</td><td data-metric="skipped">{{.Skipped}}</td><td data-metric="failed">{{.Failed}}</td><td data-metric="dry_run">{{.Dry}}</td><td data-metric="errors">{{.Errors}}</td><td data-metric="seen">{{.Seen}}</td><td data-metric="enqueued">{{.Enqueued}}</td><td data-metric="scans">{{.Scans}}</td></tr>
{{else}}<tr><td colspan="9">nothing yet</td></tr>{{end}}</table>
<h2>Duplicates prevented, by layer</h2>
<table><tr><th>layer</th><th>count</th></tr>
{{range .Duplicates}}<tr><td>{{.Label}}</td><td>{{.Value}}</td></tr>{{end}}</table>
<h2>Lock acquisitions</h2>
<table><tr><th>result</th><th>count</th></tr>
{{range .Lock}}<tr><td>{{.Label}}</td><td>{{.Value}}</td></tr>{{end}}</table>
<p>Counters of this process since it started; cluster-wide queue numbers are in
{{if .Monitoring}}<a href="/monitoring/">/monitoring/</a> and {{end}}<a href="/metrics">/metrics</a>.
Refreshes every 3 s. {{.Generated.Format "2006-01-02 15:04:05Z"}}</p>
</body></html>
`))
