package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one case: one implementation at one concurrency in one round.
type result struct {
	Impl       string        `json:"impl"`
	Goroutines int           `json:"goroutines"`
	Round      int           `json:"round"`
	Cycles     int64         `json:"cycles"`
	Errors     int64         `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	// CPU used during the case by the redis-server process and by this
	// process (all of it: the lock, go-redis, the benchmark loop).
	ServerCPU time.Duration `json:"server_cpu_ns"`
	ClientCPU time.Duration `json:"client_cpu_ns"`
	// Per-command execution time inside Redis (own server only), and its
	// top-level sum: EVALSHA's time includes the redis.call()s it made.
	Commands map[string]cmdStat `json:"commands,omitempty"`
	ExecUsec int64              `json:"exec_usec"`
}

func (r result) perSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Cycles) / r.Elapsed.Seconds()
}

func (r result) serverUsPerCycle() float64 { return usPerCycle(r.ServerCPU, r.Cycles) }
func (r result) clientUsPerCycle() float64 { return usPerCycle(r.ClientCPU, r.Cycles) }
func (r result) execUsPerCycle() float64 {
	if r.Cycles == 0 {
		return 0
	}
	return float64(r.ExecUsec) / float64(r.Cycles)
}

// commandBreakdown is "evalsha 2.0×3.10µs, set 1.0×1.00µs": per cycle, how
// many calls of each command ran in Redis and the mean execution time of
// one (commands run by scripts included, and marked "(in script)").
func (r result) commandBreakdown(sent []string) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(r.Commands)) {
		st := r.Commands[name]
		if st.Calls == 0 || r.Cycles == 0 || strings.HasPrefix(name, "config") || name == "info" || name == "flushdb" {
			continue
		}
		where := ""
		if !slices.Contains(sent, name) {
			where = " (in script)"
		}
		parts = append(parts, fmt.Sprintf("%s %.2f×%.2fµs%s", name, float64(st.Calls)/float64(r.Cycles), float64(st.Usec)/float64(st.Calls), where))
	}
	return strings.Join(parts, ", ")
}

func usPerCycle(d time.Duration, cycles int64) float64 {
	if cycles == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(cycles)
}

// percentiles sorts lat in place and returns its p50 and p99 (nearest rank).
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(lat))+0.999999) - 1
		return lat[min(max(i, 0), len(lat)-1)]
	}
	return rank(0.50), rank(0.99)
}

// pick selects, for each (impl, goroutines), the round to report: "best" is
// the round with the highest cycles/s (noise from other load on the machine
// only ever slows a case down), "median" the median round by cycles/s (the
// slower middle one for an even count: with 2 rounds, the worse round).
func pick(results []result, how string) []result {
	type key struct {
		impl string
		g    int
	}
	groups := map[key][]result{}
	var order []key
	for _, r := range results {
		k := key{r.Impl, r.Goroutines}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]result, 0, len(order))
	for _, k := range order {
		rs := groups[k]
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].perSec() > rs[j].perSec() })
		if how == "median" {
			out = append(out, rs[len(rs)/2]) // sorted fastest first
		} else {
			out = append(out, rs[0])
		}
	}
	return out
}

// find returns the chosen result for impl at g goroutines.
func find(rs []result, impl string, g int) (result, bool) {
	for _, r := range rs {
		if r.Impl == impl && r.Goroutines == g {
			return r, true
		}
	}
	return result{}, false
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1fµs", float64(d.Nanoseconds())/1e3)
}

// writeTable prints the chosen results, grouped by goroutines, with each
// implementation's ratio to bidder's lock (impl/bidder: >1 means the peer is
// faster) and the reverse (bidder/impl), which is what the targets are about.
func writeTable(w io.Writer, rs []result, goroutines []int, impls []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\tgoroutines\tcycles/s\tp50\tp99\tx/bidder cyc/s\tbidder/x cyc/s\tbidder/x p50\tredis µs/cyc\tredis exec µs/cyc\tclient µs/cyc\terrors\t")
	for _, g := range goroutines {
		base, hasBase := find(rs, "bidder", g)
		for _, name := range impls {
			r, ok := find(rs, name, g)
			if !ok {
				continue
			}
			rel, rev, revP50 := "-", "-", "-"
			if hasBase {
				rel = fmt.Sprintf("%.2f", ratio(r.perSec(), base.perSec()))
				rev = fmt.Sprintf("%.2f", ratio(base.perSec(), r.perSec()))
				revP50 = fmt.Sprintf("%.2f", ratio(float64(base.P50), float64(r.P50)))
			}
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%d\t\n",
				r.Impl, r.Goroutines, r.perSec(), fmtDur(r.P50), fmtDur(r.P99),
				rel, rev, revP50, r.serverUsPerCycle(), r.execUsPerCycle(), r.clientUsPerCycle(), r.Errors)
		}
	}
	tw.Flush()
}

// target is one of the goals, checked against the chosen results.
type target struct {
	What  string  `json:"what"`
	Value float64 `json:"value"`
	Goal  string  `json:"goal"`
	Met   bool    `json:"met"`
	Known bool    `json:"known"` // false when a case it needs was not run
}

// targets (issue 14, "the bid path in two round trips"): at 64 goroutines
// bidder >= 0.85x raw cycles/s (and, for reference, level with
// redislock); at 1 goroutine bidder's p50 <= 1.05x raw's.
func targets(rs []result) []target {
	var out []target
	cyc := func(peer string, goal float64) {
		t := target{What: "bidder/" + peer + " cycles/s @64", Goal: fmt.Sprintf(">= %.2f", goal)}
		b, ok1 := find(rs, "bidder", 64)
		p, ok2 := find(rs, peer, 64)
		if ok1 && ok2 {
			t.Known, t.Value = true, ratio(b.perSec(), p.perSec())
			t.Met = t.Value >= goal
		}
		out = append(out, t)
	}
	cyc("raw", 0.85)
	cyc("redislock", 1.0)
	t := target{What: "bidder/raw p50 @1", Goal: "<= 1.05"}
	b, ok1 := find(rs, "bidder", 1)
	p, ok2 := find(rs, "raw", 1)
	if ok1 && ok2 {
		t.Known, t.Value = true, ratio(float64(b.P50), float64(p.P50))
		t.Met = t.Value <= 1.05
	}
	return append(out, t)
}

func writeTargets(w io.Writer, ts []target) {
	for _, t := range ts {
		status := "not run"
		if t.Known {
			status = "MET"
			if !t.Met {
				status = "NOT MET"
			}
			fmt.Fprintf(w, "  %-30s %.3f  (target %s)  %s\n", t.What, t.Value, t.Goal, status)
			continue
		}
		fmt.Fprintf(w, "  %-30s -      (target %s)  %s\n", t.What, t.Goal, status)
	}
}

// writeRounds prints every round's cycles/s, so the spread (the noise) is
// visible next to the chosen round.
func writeRounds(w io.Writer, all []result, goroutines []int, impls []string) {
	for _, g := range goroutines {
		for _, name := range impls {
			var parts []string
			for _, r := range all {
				if r.Impl == name && r.Goroutines == g {
					parts = append(parts, fmt.Sprintf("r%d=%.0f", r.Round, r.perSec()))
				}
			}
			if len(parts) > 0 {
				fmt.Fprintf(w, "  %-10s g=%-3d %s\n", name, g, strings.Join(parts, " "))
			}
		}
	}
}
