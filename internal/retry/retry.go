// Package retry spaces the attempts of a loop that retries something that
// failed: a store that does not answer, an accept that ran out of
// descriptors.
package retry

import (
	"math/rand/v2"
	"time"
)

// Backoff is the delay before each next attempt: it starts at first and
// doubles up to max. Each delay is drawn between half and all of that, so
// that loops that failed together (one per user followed, per stream
// replaying, per instance) do not all retry in the same instant.
type Backoff struct {
	first, max time.Duration
	next       time.Duration
}

// New returns a Backoff from first up to max.
func New(first, max time.Duration) *Backoff {
	return &Backoff{first: first, max: max, next: first}
}

// Next returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(2*b.next, b.max)
	return d
}

// Reset starts again from first: the last attempt worked.
func (b *Backoff) Reset() { b.next = b.first }

// Wait waits for the next delay; false if done closed first.
func (b *Backoff) Wait(done <-chan struct{}) bool { return Sleep(b.Next(), done) }

// Sleep waits for d; false if done closed first.
func Sleep(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
