package retry

import (
	"testing"
	"testing/synctest"
	"time"
)

// The delays double from first up to max, each between half and all of
// its step; Reset starts again from first; closing done ends a wait.
func TestBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(50*time.Millisecond, time.Second)
		steps := []time.Duration{50, 100, 200, 400, 800, 1000, 1000}
		for round := range 2 {
			for i, step := range steps {
				step *= time.Millisecond
				start := time.Now()
				if !b.Wait(nil) {
					t.Fatal("Wait with no done: false")
				}
				if got := time.Since(start); got < step/2 || got > step {
					t.Fatalf("round %d, wait %d: %v, want within [%v, %v]", round, i, got, step/2, step)
				}
			}
			b.Reset()
		}
		seen := make(map[time.Duration]bool)
		for range 100 {
			seen[New(time.Second, time.Second).Next()] = true
		}
		if len(seen) < 2 {
			t.Fatal("100 first delays all alike: no jitter")
		}

		done := make(chan struct{})
		go func() {
			time.Sleep(10 * time.Millisecond)
			close(done)
		}()
		start := time.Now()
		if Sleep(time.Hour, done) {
			t.Fatal("Sleep ran its hour with done closed after 10ms")
		}
		if got := time.Since(start); got != 10*time.Millisecond {
			t.Fatalf("Sleep returned after %v, want 10ms, when done closed", got)
		}
	})
}
