package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// soakSample is the server at one moment of a soak.
type soakSample struct {
	at time.Duration // since the soak began
	procSample
	goroutines int64 // go_goroutines; -1 when the server has no /metrics
}

// soakResult is a soak's samples and the verdict on them.
type soakResult struct {
	churn    float64 // streams closed and reopened per second
	before   soakSample
	during   []soakSample
	after    soakSample
	flat     bool
	verdicts []string
}

// How "flat" is judged: the samples of the last 80% of the soak (the first
// 20% let buffers, pools and the heap reach their working size) are fitted
// with a least-squares line; its rise over that stretch must stay within
// the tolerance below. After the streams close, goroutines and open files
// must come back to within the same absolute tolerance of before.
const (
	flatSkip      = 0.2
	flatRSSShare  = 0.10     // of the mean RSS
	flatRSSFloor  = 16 << 20 // bytes
	flatCountPct  = 0.02     // of the mean goroutines or open files
	flatCountKept = 50       // goroutines or open files
)

// sampler samples the server every interval until stopped.
type sampler struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	out   []soakSample
}

func startSampler(ctx context.Context, t *target, every time.Duration) *sampler {
	s := &sampler{stopc: make(chan struct{})}
	start := time.Now()
	s.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.stopc:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			smp := soakSample{at: time.Since(start), goroutines: goroutines(ctx, t.metricsURL)}
			if len(t.pids) > 0 {
				smp.procSample, _ = sampleProcs(t.pids)
			}
			s.out = append(s.out, smp)
		}
	})
	return s
}

func (s *sampler) stop() []soakSample {
	close(s.stopc)
	s.wg.Wait()
	return s.out
}

// settleAfter waits, after every stream has closed, for the server's
// goroutines and open files to come back to within the tolerance of
// before (at most 30 s past settle), and samples it.
func settleAfter(ctx context.Context, t *target, before int64, settle time.Duration) soakSample {
	pause(ctx, settle)
	deadline := time.Now().Add(30 * time.Second)
	for {
		smp := soakSample{goroutines: goroutines(ctx, t.metricsURL)}
		if len(t.pids) > 0 {
			smp.procSample, _ = sampleProcs(t.pids)
		}
		back := smp.goroutines <= before+flatCountKept
		if time.Now().After(deadline) || back || !pause(ctx, time.Second) {
			return smp
		}
	}
}

// judge decides whether RSS, goroutines and open files stayed flat.
func (s *soakResult) judge() {
	s.flat = true
	n := len(s.during)
	steady := s.during[int(float64(n)*flatSkip):]
	if len(steady) < 3 {
		s.flat = false
		s.verdicts = append(s.verdicts, fmt.Sprintf("too few samples (%d in the steady part) to judge: run longer or sample more often", len(steady)))
		return
	}
	span := (steady[len(steady)-1].at - steady[0].at).Seconds()
	check := func(name string, unit float64, unitName string, tolerance func(mean float64) float64, value func(soakSample) float64) {
		xs, ys := make([]float64, len(steady)), make([]float64, len(steady))
		for i, smp := range steady {
			xs[i], ys[i] = smp.at.Seconds(), value(smp)
		}
		slope, mean := fitLine(xs, ys)
		rise := slope * span
		tol := tolerance(mean)
		ok := math.Abs(rise) <= tol
		s.flat = s.flat && ok
		word := "flat"
		if !ok {
			word = "NOT flat"
		}
		s.verdicts = append(s.verdicts, fmt.Sprintf("%s %s: %+.1f%s over the last %.0f s (mean %.1f%s, tolerance ±%.1f%s)",
			name, word, rise/unit, unitName, span, mean/unit, unitName, tol/unit, unitName))
	}
	if steady[0].Procs > 0 {
		check("RSS", 1<<20, " MiB", func(m float64) float64 { return max(flatRSSShare*m, flatRSSFloor) },
			func(x soakSample) float64 { return float64(x.RSS) })
		check("open files", 1, "", countTolerance, func(x soakSample) float64 { return float64(x.FDs) })
	}
	if steady[0].goroutines >= 0 {
		check("goroutines", 1, "", countTolerance, func(x soakSample) float64 { return float64(x.goroutines) })
	}
	if steady[0].Procs == 0 && steady[0].goroutines < 0 {
		s.verdicts = append(s.verdicts, "nothing sampled: the server's processes are unknown (-server-pid) and it has no /metrics")
	}
	if s.before.goroutines >= 0 && s.after.goroutines >= 0 {
		ok := s.after.goroutines <= s.before.goroutines+flatCountKept
		s.flat = s.flat && ok
		s.verdicts = append(s.verdicts, fmt.Sprintf("goroutines after the streams closed: %d, before any: %d (%s)",
			s.after.goroutines, s.before.goroutines, backWord(ok)))
	}
	if s.before.Procs > 0 && s.after.Procs > 0 {
		ok := s.after.FDs <= s.before.FDs+flatCountKept
		s.flat = s.flat && ok
		s.verdicts = append(s.verdicts, fmt.Sprintf("open files after the streams closed: %d, before any: %d (%s)",
			s.after.FDs, s.before.FDs, backWord(ok)))
	}
}

func countTolerance(mean float64) float64 { return max(flatCountPct*mean, flatCountKept) }

func backWord(ok bool) string {
	if ok {
		return "back to where it was"
	}
	return "NOT back: something is kept"
}

// fitLine is the least-squares slope of ys over xs, and the mean of ys.
func fitLine(xs, ys []float64) (slope, mean float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, sy / n
	}
	return (n*sxy - sx*sy) / den, sy / n
}

// table is the samples as rows: before, every sample during, after.
func (s *soakResult) table() string {
	var b strings.Builder
	b.WriteString("| when | RSS | PSS | goroutines | open files |\n|---|---:|---:|---:|---:|\n")
	row := func(when string, x soakSample) {
		g := "n/a"
		if x.goroutines >= 0 {
			g = fmt.Sprint(x.goroutines)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d |\n", when, mib(x.RSS), mib(x.PSS), g, x.FDs)
	}
	row("before", s.before)
	for _, x := range s.during {
		row(fmt.Sprintf("%.0f s", x.at.Seconds()), x)
	}
	row("after", s.after)
	return b.String()
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
