package embedded

import (
	"sync"
	"time"
)

// Sweeper calls a function at a steady interval on a goroutine of its own
// until Stop, for dropping expired streams.
type Sweeper struct {
	stop chan struct{}
	once sync.Once
	done sync.WaitGroup
}

// StartSweeper calls sweep every SweepEvery(ttl); with no time to live
// there is nothing to sweep and it starts nothing.
func StartSweeper(ttl time.Duration, sweep func()) *Sweeper {
	s := &Sweeper{stop: make(chan struct{})}
	if ttl <= 0 {
		return s
	}
	s.done.Go(func() {
		t := time.NewTicker(SweepEvery(ttl))
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				sweep()
			}
		}
	})
	return s
}

// Stop ends the sweeps and waits for one under way; it may be called more
// than once.
func (s *Sweeper) Stop() {
	s.once.Do(func() { close(s.stop) })
	s.done.Wait()
}
