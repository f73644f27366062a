package httpserver

import (
	"math"
	"slices"
	"strings"
	"time"
)

// The history charts are drawn here, as inline SVG: no script, no CDN, so
// they show offline and with JavaScript off. One bar per bucket, stacked by
// series; a bucket with nothing in it draws nothing, so a quiet day costs
// a few bytes.

// maxBars bounds a chart's bars: a long window is drawn in wider buckets.
const maxBars = 360

// bucketFor is the shortest bar width (dividing an hour, so bars align
// with the clock) that draws span in at most maxBars bars.
func bucketFor(span time.Duration) time.Duration {
	for _, m := range []time.Duration{1, 2, 5, 10, 15, 30} {
		if span/(m*time.Minute) <= maxBars {
			return m * time.Minute
		}
	}
	return time.Hour
}

// Chart geometry, in SVG user units (the SVG scales to the page's width).
const (
	chartW     = 720.0
	chartH     = 130.0
	plotTop    = 14.0
	plotBottom = 112.0
)

type chart struct {
	Name, Title, Marketplace string
	Bucket                   time.Duration
	W, H                     float64
	Bars                     []bar
	Legend                   []legend
	Ticks                    []tick
	Max, Total               int64
	BaseY                    float64
}

type bar struct {
	X, Y, W, H    float64
	Series, Color string
	Count         int64
	At            time.Time
}

type legend struct {
	Series, Color string
	Total         int64
}

type tick struct {
	X     float64
	Label string
}

// chartGroups are the charts, each with the history metrics it draws: a
// metric "<kind>:<label>" under its kind's chart, the label as the series.
var chartGroups = []struct{ name, title, kind string }{
	{"placed", "Bids placed (and dry runs)", "placed"},
	{"skipped", "Skipped, by rule", "skipped"},
	{"failed", "Failed, by class", "failed"},
	{"duplicates", "Duplicates prevented, by layer", "dup"},
	{"parked", "Parked", "parked"},
	{"outcomes", "Bid outcomes recorded", "outcome"},
}

// palette is colour-blind-safe (Okabe-Ito) and readable on white.
var palette = []string{"#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"}

// seriesOf names the chart and series a history metric belongs to.
func seriesOf(metric string) (chartName, series string) {
	kind, label, _ := strings.Cut(metric, ":")
	switch kind {
	case "placed", "parked":
		return kind, kind
	case "dry_run":
		return "placed", "dry_run"
	case "skipped", "failed", "dup":
		if kind == "dup" {
			kind = "duplicates"
		}
		return kind, orNone(label)
	}
	return "", ""
}

// charts draws one marketplace's history from since to until (whole
// buckets) as the five charts, in chartGroups' order.
func charts(marketplaceID string, history map[string][]Point, since, until time.Time, bucket time.Duration) []chart {
	n := int(until.Sub(since) / bucket)
	// chart -> series -> counts per bucket
	sums := map[string]map[string][]int64{}
	for metric, points := range history {
		name, series := seriesOf(metric)
		if name == "" {
			continue
		}
		if sums[name] == nil {
			sums[name] = map[string][]int64{}
		}
		counts := sums[name][series]
		if counts == nil {
			counts = make([]int64, n)
		}
		for _, p := range points {
			if i := int(p.Minute.Sub(since) / bucket); !p.Minute.Before(since) && i < n {
				counts[i] += p.Count
			}
		}
		sums[name][series] = counts
	}
	out := make([]chart, 0, len(chartGroups))
	for _, g := range chartGroups {
		out = append(out, drawChart(g.name, g.title, marketplaceID, sums[g.name], since, until, bucket, n))
	}
	return out
}

func drawChart(name, title, marketplaceID string, bySeries map[string][]int64, since, until time.Time, bucket time.Duration, n int) chart {
	c := chart{Name: name, Title: title, Marketplace: marketplaceID, Bucket: bucket, W: chartW, H: chartH, BaseY: plotBottom}
	names := make([]string, 0, len(bySeries))
	for s := range bySeries {
		names = append(names, s)
	}
	// The chart's own series (placed, parked) first, at the bottom.
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == name:
			return -1
		case b == name:
			return 1
		}
		return strings.Compare(a, b)
	})
	stack := make([]int64, n)
	for si, s := range names {
		var total int64
		for i, v := range bySeries[s] {
			stack[i] += v
			total += v
		}
		if total > 0 {
			c.Legend = append(c.Legend, legend{Series: s, Color: palette[si%len(palette)], Total: total})
		}
		c.Total += total
	}
	for _, v := range stack {
		c.Max = max(c.Max, v)
	}
	bw := chartW / float64(n)
	scale := 0.0
	if c.Max > 0 {
		scale = (plotBottom - plotTop) / float64(c.Max)
	}
	clear(stack)
	for si, s := range names {
		for i, v := range bySeries[s] {
			if v == 0 {
				continue
			}
			h := float64(v) * scale
			y := plotBottom - float64(stack[i])*scale - h
			stack[i] += v
			c.Bars = append(c.Bars, bar{X: round2(float64(i) * bw), Y: round2(y), W: round2(max(bw-0.3, 0.5)), H: round2(h),
				Series: s, Color: palette[si%len(palette)], Count: v, At: since.Add(time.Duration(i) * bucket)})
		}
	}
	c.Ticks = ticks(since, until, bw/float64(bucket))
	return c
}

// ticks labels the time axis on whole hours, at most about seven of them.
func ticks(since, until time.Time, perNanosecond float64) []tick {
	span := until.Sub(since)
	step := time.Hour
	for _, h := range []time.Duration{1, 2, 3, 6, 12, 24} {
		step = h * time.Hour
		if span/step <= 7 {
			break
		}
	}
	if span <= 2*time.Hour {
		step = 15 * time.Minute
	}
	var out []tick
	for t := since.Truncate(step); t.Before(until); t = t.Add(step) {
		if t.Before(since) {
			continue
		}
		x := round2(float64(t.Sub(since)) * perNanosecond)
		if x < 12 || x > chartW-12 {
			continue // a label cut in half by the edge
		}
		out = append(out, tick{X: x, Label: t.UTC().Format("15:04")})
	}
	return out
}

// round2 keeps the SVG short: a hundredth of a unit is below a pixel.
func round2(f float64) float64 { return math.Round(f*100) / 100 }
