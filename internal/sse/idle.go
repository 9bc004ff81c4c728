// This file holds the request goroutine's wait: before a stream is armed
// (pump.go), while it waits for the backend or a replay retry, its request
// goroutine sends the heartbeats and watches for the client leaving, the
// token expiring and the hub closing, in one select.

package sse

import (
	"time"
)

// clock starts the heartbeat ticker and the token's expiry timer for the
// request goroutine's select, once.
func (s *stream) clock() {
	if s.ticker == nil {
		s.ticker = time.NewTicker(s.beat.every)
	}
	if s.expiryTimer == nil && !s.expires.IsZero() {
		s.expiryTimer = time.NewTimer(time.Until(s.expires))
		s.expiry = s.expiryTimer.C
	}
}

// idle serves heartbeats until until is closed (true) or the stream must
// end (false). A nil until never closes; a non-nil after ends the wait
// with true too.
func (s *stream) idle(until <-chan struct{}, after <-chan time.Time) bool {
	s.clock()
	if len(s.buf) > 0 && !s.flush() { // the head, when it waited
		return false
	}
	for {
		select {
		case <-until:
			return true
		case <-after:
			return true
		case <-s.ctx.Done():
			return false
		case <-s.conn.Kicked():
			return false
		case <-s.h.hub.Closing():
			s.end()
			return false
		case <-s.expiry:
			s.end()
			return false
		case <-s.ticker.C:
			if !s.heartbeat() {
				return false
			}
		}
	}
}
