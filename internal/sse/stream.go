// This file holds the stream, one response being written on a connection
// taken over from the server, and what its request goroutine and its pump
// share: the writes under a deadline (flush, flushBatch, write), how a
// frame becomes bytes without a duplicate (addTo), the retry that ends a
// stream (end) and its release (finish).

package sse

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// stream is one response being written. Until it is armed, only its
// request goroutine writes it; after, only whoever set running does (its
// pump, or the fan-out's goroutine in writeNow).
type stream struct {
	h        *Handler
	conn     *routing.Conn
	ctx      context.Context
	buf      []byte
	lastSent notice.ID
	beat     heartbeat
	expires  time.Time

	// Used while the request goroutine serves the stream (idle.go).
	ticker      *time.Ticker
	expiryTimer *time.Timer
	expiry      <-chan time.Time

	// The connection, and what wakes the pump.
	nc  net.Conn
	raw syscall.RawConn // nc's, for writes that must not block; nil if it has none
	// leave, when set, waits for the client to leave; leaveToken names
	// the stream there, under its lock (0 once forgotten). Without it the
	// stream's own goroutine waits (watch).
	leave      *leaveWatch
	leaveToken uint64
	held       *batch // what a write on the fan-out's goroutine left for the pump
	heldN      int    // events in held
	cancel     context.CancelFunc
	hb         *time.Timer // heartbeat, once armed
	exp        *time.Timer // token expiry, once armed

	mu      sync.Mutex
	pend    uint8 // wake reasons not yet handled
	running bool  // a goroutine owns the stream's writing
	done    bool
}

// Wake reasons.
const (
	wakeTick = 1 << iota // heartbeat due
	wakeEnd              // token expired or shutting down: say retry, close
	wakeGone             // the client left or was kicked: close
)

// flush writes the buffer under a deadline; false when the client is gone.
func (s *stream) flush() bool {
	if len(s.buf) == 0 {
		return true
	}
	one := [1][]byte{s.buf}
	err := s.write(one[:])
	if cap(s.buf) > maxKeptBuffer {
		s.buf = make([]byte, 0, 512) // a large replay should not pin memory
	} else {
		s.buf = s.buf[:0]
	}
	return s.written(err)
}

// flushBatch writes a batch; false when the client is gone.
func (s *stream) flushBatch(b *batch) bool {
	v := b.buffers()
	if len(v) == 0 {
		return true
	}
	return s.written(s.write(v))
}

// write sends v in one writev, under a deadline that covers this write
// only: writes on the fan-out's goroutine never wait, and would fail on a
// deadline left behind once it passed.
func (s *stream) write(v net.Buffers) error {
	_ = s.nc.SetWriteDeadline(time.Now().Add(s.h.opts.WriteTimeout))
	_, err := v.WriteTo(s.nc)
	_ = s.nc.SetWriteDeadline(time.Time{})
	return err
}

// written records a write's outcome; false when the client is gone.
func (s *stream) written(err error) bool {
	s.beat.markWrote()
	if err != nil {
		// A client that stopped reading until the write deadline passed is
		// slow, like one that fell a queue behind.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.h.m.SlowClosed.Inc()
		}
		return false
	}
	return true
}

// end tells the browser to come back soon, at a random moment within a few
// seconds, so that a draining instance's streams spread over the others.
func (s *stream) end() {
	s.buf = AppendRetry(s.buf, jitter(100*time.Millisecond, 1900*time.Millisecond).Milliseconds())
	s.flush()
}

// maxKeptBuffer is the largest write buffer a stream keeps between writes.
const maxKeptBuffer = 64 << 10

// maxCoalesce bounds how many queued frames one write carries.
const maxCoalesce = 64

// addTo adds what frame f means for the stream to b: a gap announcement,
// the event (large frames by reference), or nothing when it was sent
// already. It returns the events added.
func (s *stream) addTo(b *batch, f *routing.Frame) int {
	if f.Gap {
		b.small = AppendGap(b.small, s.lastSent)
		s.h.m.GapsSent.Inc()
		return 0
	}
	if !s.lastSent.Less(f.ID) {
		return 0
	}
	s.lastSent = f.ID
	b.add(f.Bytes)
	return 1
}

// finish releases the stream: it leaves the hub, stops its timers and, if
// the connection was taken over, closes it.
func (s *stream) finish() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.h.hub.Unsubscribe(s.conn)
	if s.ticker != nil {
		s.ticker.Stop()
	}
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
	}
	if s.hb != nil {
		s.hb.Stop()
	}
	if s.exp != nil {
		s.exp.Stop()
	}
	if s.nc != nil {
		_ = s.nc.Close()
		s.cancel()
		s.h.untrack(s)
	}
	s.buf = nil
	s.held = nil
}
