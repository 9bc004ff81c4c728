// This file holds the request goroutine's loops: idle, which waits for the
// backend or a replay retry while sending heartbeats (taken-over streams
// use it too, before they are armed), and live, which runs a whole stream
// on net/http's response writer where the connection cannot be taken over
// (HTTP/2, NoHijack). One goroutine per stream, one select, as mercure does;
// kept apart from pump.go, whose streams hold no goroutine while quiet.

package sse

import (
	"time"
)

// clock starts the heartbeat ticker and the token's expiry timer for the
// request goroutine's selects, once.
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

// live writes the hub's frames as they come, several per write when the
// stream is behind, skipping what replay already sent.
func (s *stream) live() {
	s.clock()
	frames := s.conn.Frames()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.conn.Kicked():
			return
		case <-s.h.hub.Closing():
			s.end()
			return
		case <-s.expiry:
			s.end()
			return
		case <-s.ticker.C:
			if !s.heartbeat() {
				return
			}
		case f := <-frames:
			b := getBatch()
			n := s.addTo(b, f)
		more:
			for range maxCoalesce - 1 {
				select {
				case f = <-frames:
					n += s.addTo(b, f)
				default:
					break more
				}
			}
			ok := s.flushBatch(b)
			putBatch(b)
			if !ok {
				return
			}
			s.h.m.EventsDelivered.Add(float64(n))
		}
	}
}
