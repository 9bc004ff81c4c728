// This file holds the heartbeat decision: when a stream writes ": ping".
// A stream that wrote since the last tick needs none (and an armed one is
// not even woken for it), an armed stream's first tick comes at a random
// moment within one interval, and a ping does not count as a write. The
// request goroutine (idle.go) and the pump both ask here, so that the rule
// is read and changed in one place.

package sse

import (
	"sync/atomic"
	"time"
)

// heartbeat is a stream's heartbeat state: the interval, and whether the
// stream wrote since the last tick. wrote is set by whichever goroutine
// writes and read by the heartbeat timer's, hence atomic.
type heartbeat struct {
	every time.Duration
	wrote atomic.Bool
}

// markWrote records a write: the next tick needs no ping.
func (b *heartbeat) markWrote() { b.wrote.Store(true) }

// due is asked at each tick: true when the stream wrote nothing since the
// previous one and must ping. Either way a new interval starts.
func (b *heartbeat) due() bool { return !b.wrote.Swap(false) }

// pinged records that a due ping went out: a ping is not a write that
// spares the next tick its own.
func (b *heartbeat) pinged() { b.wrote.Store(false) }

// first is the delay to an armed stream's first tick: a random moment
// within one interval, so that streams opened together (a deploy, a
// reconnect storm) do not tick together for ever after, delaying every
// event written in that instant. No stream goes longer than the interval
// without a write.
func (b *heartbeat) first() time.Duration {
	return jitter(b.every/10, b.every*9/10)
}

// heartbeat is the request goroutine's tick (idle.go): a ping
// when due; false when the client is gone.
func (s *stream) heartbeat() bool {
	if !s.beat.due() {
		return true
	}
	s.buf = append(s.buf, Ping...)
	ok := s.flush()
	s.beat.pinged()
	return ok
}

// startBeat starts an armed stream's heartbeat timer.
func (s *stream) startBeat() {
	s.hb = time.AfterFunc(time.Hour, s.tick)
	s.hb.Reset(s.beat.first())
}

// tick is the heartbeat timer's: a stream that wrote since the last tick
// is not woken, its timer only set again.
func (s *stream) tick() {
	if !s.beat.due() {
		s.hb.Reset(s.beat.every)
		return
	}
	s.wake(wakeTick)
}

// pumpTick is the pump's part of a tick: the ping, unless the stream
// wrote since tick woke it, and the next interval. false when the client
// is gone.
func (s *stream) pumpTick() bool {
	if s.beat.due() {
		b := getBatch()
		b.small = append(b.small, Ping...)
		ok := s.flushBatch(b)
		putBatch(b)
		if !ok {
			return false
		}
		s.beat.pinged()
	}
	s.hb.Reset(s.beat.every)
	return true
}
