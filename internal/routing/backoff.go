package routing

import (
	"math/rand/v2"
	"time"
)

// backoff spaces retries against a store that does not answer: from 50ms
// doubling to 2s, with jitter so that many users do not retry in step.
type backoff struct{ next time.Duration }

func newBackoff() *backoff { return &backoff{next: 50 * time.Millisecond} }

func (b *backoff) peek() time.Duration { return b.next }

// wait sleeps for the next delay; false if stop closed first.
func (b *backoff) wait(stop <-chan struct{}) bool {
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(b.next*2, 2*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
