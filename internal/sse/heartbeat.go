// This file holds the heartbeat decision: when a stream writes ": ping".
// A stream that wrote since the last tick needs none (and a taken-over one
// is not even woken for it), a taken-over stream's first tick comes at a
// random moment within one interval, and a ping does not count as a write.
// Both paths ask here, so that the rule is read and changed in one place.

package sse

func (s *stream) heartbeat() bool {
	if s.wrote.Swap(false) {
		return true
	}
	s.buf = append(s.buf, Ping...)
	ok := s.flush()
	s.wrote.Store(false)
	return ok
}

// tick is the heartbeat timer's: a stream that wrote since the last tick
// needs no ping, and is not woken for it.
func (s *stream) tick() {
	if s.wrote.Swap(false) {
		s.hb.Reset(s.h.opts.Heartbeat)
		return
	}
	s.wake(wakeTick)
}
