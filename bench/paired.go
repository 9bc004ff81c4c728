package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// sustainedP99 is the latency bound under which a rate counts as
// sustained (with nothing lost and the producer keeping the rate).
const sustainedP99 = 0.100 // seconds

// metric is one figure of a run, and which way is better.
type metric struct {
	name   string
	value  func(*runResult) float64
	higher bool // above 1 is better (streams opened per second)
}

var pairedMetrics = []metric{
	{name: "p50", value: func(r *runResult) float64 { return r.Report.Latency.quantile(0.5).Seconds() * 1000 }},
	{name: "p99", value: func(r *runResult) float64 { return r.Report.Latency.quantile(0.99).Seconds() * 1000 }},
	{name: "p99.9", value: func(r *runResult) float64 { return r.Report.Latency.quantile(0.999).Seconds() * 1000 }},
	{name: "KiB/stream", value: func(r *runResult) float64 { return r.memPerStream() / 1024 }},
	{name: "opened/s", value: (*runResult).openRate, higher: true},
	{name: "server µs/event", value: func(r *runResult) float64 { return perEvent(r.ServerCPU, r.WindowSent) }},
}

// peers are the servers noticed is compared with; "better peer" takes,
// round by round, whichever of them did better on each figure.
var peers = []string{"nchan", "centrifugo"}

// writePaired reports the rounds of -pairs: each target's figures as the
// median and range over the rounds, then each way of publishing to
// noticed divided by every other target, round by round (runs of one
// round ran back to back), as the median and range of those ratios, and,
// over several rates, the highest rate each sustained.
func writePaired(w io.Writer, rs []*runResult, specs []string) {
	type group struct {
		mode    string
		streams int
		rate    float64
	}
	var groups []group
	runs := map[group]map[string][]*runResult{} // spec → run per round
	for _, r := range rs {
		g := group{r.Mode, r.Streams, r.Rate}
		if runs[g] == nil {
			groups = append(groups, g)
			runs[g] = map[string][]*runResult{}
		}
		runs[g][r.Spec] = append(runs[g][r.Spec], r)
	}
	for _, g := range groups {
		byRound := func(spec string, round int) *runResult {
			for _, r := range runs[g][spec] {
				if r.Round == round && r.Err == nil {
					return r
				}
			}
			return nil
		}
		rounds := 0
		for _, list := range runs[g] {
			for _, r := range list {
				rounds = max(rounds, r.Round+1)
			}
		}
		fmt.Fprintf(w, "\n## %d rounds, %s, %d streams, %s events/s: median (min–max)\n\n", rounds, g.mode, g.streams, rateText(g.rate))
		metricsHeader(w, "| target | via | ok runs | lost, dup, misrouted |", "|---|---|---:|---|")
		for _, spec := range specs {
			list := runs[g][spec]
			if len(list) == 0 {
				continue
			}
			okRuns := 0
			var lost, dups, mis int64
			for _, r := range list {
				if r.ok() {
					okRuns++
				}
				lost, dups, mis = lost+r.lost(), dups+r.Report.Dups, mis+r.Report.Misrouted
			}
			fmt.Fprintf(w, "| %s | %s | %d of %d | %d, %d, %d |", list[0].Target, via(list[0]), okRuns, len(list), lost, dups, mis)
			for _, m := range pairedMetrics {
				var vs []float64
				for _, r := range list {
					if r.Err == nil {
						vs = append(vs, m.value(r))
					}
				}
				fmt.Fprintf(w, " %s |", spread(vs, ""))
			}
			fmt.Fprintln(w)
		}

		var others []string
		for _, spec := range specs {
			if k, _, _ := strings.Cut(spec, "/"); k != "noticed" {
				others = append(others, spec)
			}
		}
		havePeers := 0
		for _, p := range peers {
			if slices.Contains(others, p) {
				havePeers++
			}
		}
		if havePeers == 2 {
			others = append(others, "better peer")
		}
		// The value a comparison takes in one round: a target's, or the
		// better of the peers'.
		value := func(spec string, round int, m metric) float64 {
			if spec != "better peer" {
				r := byRound(spec, round)
				if r == nil {
					return 0
				}
				return m.value(r)
			}
			best := 0.0
			for _, p := range peers {
				v := 0.0
				if r := byRound(p, round); r != nil {
					v = m.value(r)
				}
				if v <= 0 {
					return 0 // a peer's run failed: no better of the two
				}
				if best == 0 || (m.higher && v > best) || (!m.higher && v < best) {
					best = v
				}
			}
			return best
		}
		for _, spec := range specs {
			if k, _, _ := strings.Cut(spec, "/"); k != "noticed" || len(runs[g][spec]) == 0 {
				continue
			}
			fmt.Fprintf(w, "\n%s ÷ each, round by round (below 1 noticed is faster or smaller; for opened/s above 1 is better):\n\n", spec)
			metricsHeader(w, "| ÷ |", "|---|")
			for _, o := range append(slices.DeleteFunc(slices.Clone(specs), func(s string) bool { return s == spec || !strings.HasPrefix(s, "noticed") }), others...) {
				fmt.Fprintf(w, "| %s |", o)
				for _, m := range pairedMetrics {
					var qs []float64
					for round := range rounds {
						a, b := value(spec, round, m), value(o, round, m)
						if a > 0 && b > 0 {
							qs = append(qs, a/b)
						}
					}
					fmt.Fprintf(w, " %s |", spread(qs, "%.2f×"))
				}
				fmt.Fprintln(w)
			}
		}
	}
	writeSustained(w, rs, specs)
}

// writeSustained: over several rates, the highest rate each target
// achieved in each round with every event delivered, nothing doubled or
// misrouted, every stream open and p99 under sustainedP99 (the rate the
// producer reached, not the one asked for: a server that holds its
// latency but takes the events more slowly than asked sets the producer's
// pace, and that pace is its rate), and noticed's as a ratio to each
// peer's.
func writeSustained(w io.Writer, rs []*runResult, specs []string) {
	type key struct {
		mode    string
		streams int
	}
	rates := map[key]map[float64]bool{}
	best := map[key]map[string]map[int]float64{} // spec → round → events/s
	for _, r := range rs {
		k := key{r.Mode, r.Streams}
		if rates[k] == nil {
			rates[k] = map[float64]bool{}
			best[k] = map[string]map[int]float64{}
		}
		rates[k][r.Rate] = true
		if best[k][r.Spec] == nil {
			best[k][r.Spec] = map[int]float64{}
		}
		if r.ok() && r.Rate > 0 && r.Report.Latency.N > 0 && r.Report.Latency.quantile(0.99).Seconds() < sustainedP99 {
			best[k][r.Spec][r.Round] = max(best[k][r.Spec][r.Round], r.PubRate)
		}
	}
	for k, rs := range rates {
		if len(rs) < 2 {
			continue
		}
		var list []float64
		for r := range rs {
			list = append(list, r)
		}
		slices.Sort(list)
		rounds := 0
		for _, m := range best[k] {
			for round := range m {
				rounds = max(rounds, round+1)
			}
		}
		fmt.Fprintf(w, "\n## Highest rate, %s, %d streams, asked %v events/s: the most a target took with p99 < %.0f ms and nothing lost, median (min–max) over the rounds\n\n",
			k.mode, k.streams, list, sustainedP99*1000)
		of := func(spec string, round int) float64 {
			if spec != "better peer" {
				return best[k][spec][round]
			}
			v := 0.0
			for _, p := range peers {
				v = max(v, best[k][p][round])
			}
			return v
		}
		for _, spec := range specs {
			var vs []float64
			for round := range rounds {
				vs = append(vs, of(spec, round))
			}
			fmt.Fprintf(w, "- %s: %s events/s\n", spec, spread(vs, ""))
		}
		for _, spec := range specs {
			if !strings.HasPrefix(spec, "noticed") {
				continue
			}
			for _, o := range append(slices.Clone(peers), "better peer") {
				var qs []float64
				for round := range rounds {
					a, b := of(spec, round), of(o, round)
					if a > 0 && b > 0 {
						qs = append(qs, a/b)
					}
				}
				if len(qs) > 0 {
					fmt.Fprintf(w, "- %s ÷ %s: %s\n", spec, o, spread(qs, "%.2f×"))
				}
			}
		}
	}
}

// metricsHeader writes a table's head: the first columns given, then one
// per figure of pairedMetrics.
func metricsHeader(w io.Writer, first, rule string) {
	fmt.Fprint(w, first)
	for _, m := range pairedMetrics {
		fmt.Fprintf(w, " %s |", m.name)
	}
	fmt.Fprint(w, "\n"+rule+strings.Repeat("---:|", len(pairedMetrics))+"\n")
}

// spread is "median (min–max)" of vs, or the one value, or "-"; format
// "" gives three significant digits, whole numbers from 100 up.
func spread(vs []float64, format string) string {
	vs = slices.DeleteFunc(slices.Clone(vs), func(v float64) bool { return v <= 0 })
	if len(vs) == 0 {
		return "-"
	}
	slices.Sort(vs)
	med := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		med = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	f := func(v float64) string {
		switch {
		case format != "":
			return fmt.Sprintf(format, v)
		case v >= 100:
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.3g", v)
	}
	if len(vs) == 1 {
		return f(med)
	}
	return f(med) + " (" + f(vs[0]) + "–" + f(vs[len(vs)-1]) + ")"
}
