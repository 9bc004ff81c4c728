// This file holds the state machine of a taken-over (hijacked) stream once
// it is armed: timers and the hub wake it (tick, hubWake, wake), a pump
// goroutine runs only while there is something to write and hands the
// stream back when done (release), the fan-out's goroutine (the hub's
// reader, or a publisher's in Hub.Append; two may wake a stream at once)
// may write queued frames at once without blocking (writeNow), and the
// Handler's leaveWatch (or, without epoll, a goroutine per stream: watch)
// waits for its client to leave. The
// hand-offs of the running flag under mu are what keep one writer per
// connection.

package sse

import (
	"errors"
	"net"
	"time"
)

// watch waits for the client of a hijacked stream to leave, where the
// Handler's leaveWatch cannot (no epoll): then it is the one goroutine a
// live stream keeps. A client says nothing after its request
// on an event stream; one that does is closed at its first byte, counted,
// rather than read for as long as it cares to send.
func (s *stream) watch() {
	var b [1]byte
	if n, _ := s.nc.Read(b[:]); n > 0 {
		s.h.m.StreamsRefused.WithLabelValues(clientInput).Inc()
	}
	s.cancel()
	s.wake(wakeGone)
}

// clientInput is the refusal reason of a stream closed for its client's
// input after the request.
const clientInput = "client_input"

// arm hands a hijacked stream over from its request goroutine to timers
// and the hub: from now on a pump goroutine runs only while there is
// something to write.
func (s *stream) arm() {
	if s.ticker != nil {
		s.ticker.Stop()
		s.ticker = nil
	}
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
		s.expiryTimer, s.expiry = nil, nil
	}
	s.buf = nil
	s.startBeat()
	if !s.expires.IsZero() {
		s.exp = time.AfterFunc(time.Until(s.expires), func() { s.wake(wakeEnd) })
	}
	s.conn.OnWake(s.hubWake)
	select {
	case <-s.h.hub.Closing():
		s.mu.Lock()
		s.pend |= wakeEnd
		s.mu.Unlock()
	default:
	}
	s.release()
}

// release ends its caller's hold on the stream's writing (running): the
// stream is let go when nothing waits, or handed to a pump.
func (s *stream) release() {
	s.mu.Lock()
	if s.pend == 0 && s.held == nil && s.conn.Queued() == 0 && !s.kicked() {
		s.running = false
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	go s.pump()
}

func (s *stream) kicked() bool {
	select {
	case <-s.conn.Kicked():
		return true
	default:
		return false
	}
}

// hubWake is called by the hub after it queued frames on the stream or
// kicked it. When now is set and the stream has nothing else to do, it
// writes the frames at once, on the fan-out's goroutine, as far as the socket
// takes them without blocking: no goroutine is started and scheduled per
// event. A pump takes over what the socket did not take, any other work,
// and the writes the hub has no time for.
func (s *stream) hubWake(now bool) {
	if s.kicked() {
		s.wake(wakeGone)
		return
	}
	s.mu.Lock()
	if s.done || s.running {
		s.mu.Unlock()
		return // a running pump sees the queue before it stops
	}
	s.running = true
	now = now && s.pend == 0 && s.raw != nil
	s.mu.Unlock()
	if now {
		s.writeNow()
	}
	s.release()
}

// writeNow writes what is queued without blocking. What the socket did
// not take is held for the pump, which writes it before anything else.
func (s *stream) writeNow() {
	b := getBatch()
	delivered := 0
	frames := s.conn.Frames()
	for range min(s.conn.Queued(), maxCoalesce) {
		delivered += s.addTo(b, <-frames)
	}
	v := b.buffers()
	total := 0
	for _, p := range v {
		total += len(p)
	}
	if total == 0 {
		putBatch(b)
		return
	}
	n, err := writeNonBlocking(s.raw, v)
	switch {
	case err == nil && n == total:
		putBatch(b)
		s.beat.markWrote()
		s.h.m.EventsDelivered.Add(float64(delivered))
	case err == nil || errors.Is(err, errWouldBlock):
		if n > 0 {
			s.beat.markWrote()
		}
		b.vec = consume(b.vec, n)
		s.held, s.heldN = b, delivered
	default: // the client is gone
		putBatch(b)
		s.mu.Lock()
		s.pend |= wakeGone
		s.mu.Unlock()
	}
}

// consume drops the first n bytes of v.
func consume(v net.Buffers, n int) net.Buffers {
	for len(v) > 0 && n >= len(v[0]) {
		n -= len(v[0])
		v[0] = nil
		v = v[1:]
	}
	if len(v) > 0 {
		v[0] = v[0][n:]
	}
	return v
}

// wake makes sure a pump handles the stream's queue and reasons. A client
// that left or was kicked has its connection closed at once, so that a
// pump blocked writing to it returns.
func (s *stream) wake(reason uint8) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.pend |= reason
	if s.running {
		s.mu.Unlock()
		if reason&wakeGone != 0 {
			_ = s.nc.Close()
		}
		return
	}
	s.running = true
	s.mu.Unlock()
	go s.pump()
}

// pump writes what is queued, coalescing frames, and handles heartbeats
// and endings; it returns when there is nothing left to do.
func (s *stream) pump() {
	for {
		s.mu.Lock()
		reason := s.pend
		s.pend = 0
		if reason == 0 && s.held == nil && s.conn.Queued() == 0 && !s.kicked() {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if reason&wakeGone != 0 || s.kicked() {
			s.finish()
			return
		}
		if b := s.held; b != nil {
			// The rest of a write the fan-out's goroutine began: first, so that
			// no frame is split by another.
			s.held = nil
			ok := s.flushBatch(b)
			putBatch(b)
			if !ok {
				s.finish()
				return
			}
			s.h.m.EventsDelivered.Add(float64(s.heldN))
		}
		if reason&wakeEnd != 0 {
			s.end()
			s.finish()
			return
		}
		if n := s.conn.Queued(); n > 0 {
			b := getBatch()
			delivered := 0
			frames := s.conn.Frames()
			for range min(n, maxCoalesce) {
				delivered += s.addTo(b, <-frames)
			}
			ok := s.flushBatch(b)
			putBatch(b)
			if !ok {
				s.finish()
				return
			}
			s.h.m.EventsDelivered.Add(float64(delivered))
		}
		if reason&wakeTick != 0 && !s.pumpTick() {
			s.finish()
			return
		}
	}
}
