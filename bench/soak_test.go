package main

import (
	"strings"
	"testing"
	"time"
)

func soakOf(rss func(i int) int64, goroutines func(i int) int64) *soakResult {
	s := &soakResult{
		before: soakSample{procSample: procSample{Procs: 1, RSS: 10 << 20, FDs: 10}, goroutines: 10},
		after:  soakSample{procSample: procSample{Procs: 1, RSS: 60 << 20, FDs: 12}, goroutines: 12},
	}
	for i := range 60 {
		s.during = append(s.during, soakSample{
			at:         time.Duration(i) * 10 * time.Second,
			procSample: procSample{Procs: 1, RSS: rss(i), FDs: 10010},
			goroutines: goroutines(i),
		})
	}
	return s
}

func TestSoakJudge(t *testing.T) {
	flat := soakOf(func(i int) int64 { return 200<<20 + int64(i%3)<<20 }, func(int) int64 { return 10020 })
	flat.judge()
	if !flat.flat {
		t.Errorf("steady figures judged not flat: %v", flat.verdicts)
	}
	leaking := soakOf(func(i int) int64 { return 200<<20 + int64(i)<<20 }, func(int) int64 { return 10020 })
	leaking.judge()
	if leaking.flat || !strings.Contains(strings.Join(leaking.verdicts, "\n"), "RSS NOT flat") {
		t.Errorf("1 MiB a sample judged flat: %v", leaking.verdicts)
	}
	goroutineLeak := soakOf(func(int) int64 { return 200 << 20 }, func(i int) int64 { return 10000 + int64(i)*10 })
	goroutineLeak.judge()
	if goroutineLeak.flat {
		t.Errorf("10 goroutines a sample judged flat: %v", goroutineLeak.verdicts)
	}
	kept := soakOf(func(int) int64 { return 200 << 20 }, func(int) int64 { return 10020 })
	kept.after.goroutines = 5000
	kept.judge()
	if kept.flat {
		t.Errorf("goroutines kept after the streams closed judged fine: %v", kept.verdicts)
	}
	short := &soakResult{during: make([]soakSample, 2)}
	short.judge()
	if short.flat {
		t.Error("two samples judged flat")
	}
}

func TestFitLine(t *testing.T) {
	slope, mean := fitLine([]float64{0, 1, 2, 3}, []float64{1, 3, 5, 7})
	if slope != 2 || mean != 4 {
		t.Errorf("slope %v mean %v, want 2 and 4", slope, mean)
	}
}
