// This file holds how a stream starts: begin waits for the backend when it
// was late and decides where the stream starts, and replay sends what the
// client missed from the store, in batches, retrying while the store does
// not answer. It runs on the request goroutine, before the stream is
// armed, and is the one place the register-replay-live order (no gap, no
// duplicate at the switch) is kept.

package sse

import (
	"context"
	"time"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/retry"
	"github.com/noticed/noticed/internal/routing"
)

// begin waits for the backend if it has not answered yet, then replays
// what the client missed or gives it the position it starts from; false
// when the stream must end.
func (s *stream) begin(start notice.ID, startErr error, from notice.ID, replay bool) bool {
	if startErr != nil {
		headersAt := time.Now()
		if !s.idle(s.conn.Ready(), nil) {
			return false
		}
		var err error
		if start, err = s.conn.Start(s.ctx); err != nil {
			s.end()
			return false
		}
		if replay {
			s.appendReadState(from)
		} else {
			// The headers went out before the backend answered, so entries
			// added since then are this stream's, though they may be older
			// than start. Redis ids are its clock's milliseconds: replay
			// from a little before the headers (clock skew), never
			// announcing a gap the client did not ask about.
			since := notice.ID{Ms: uint64(max(headersAt.Add(-skewMargin).UnixMilli(), 0))}
			at := start
			if since.Less(start) {
				at = since
			}
			s.appendReadState(at)
			if since.Less(start) {
				s.lastSent = since
				if !s.replayFrom(since, start, false) {
					return false
				}
				if s.lastSent != since {
					return true // the browser holds a real id
				}
			}
		}
	} else if replay {
		s.appendReadState(from)
	} else {
		s.appendReadState(start)
	}
	s.lastSent = start
	if replay {
		s.lastSent = from
		return s.replay(from, start)
	}
	// Give the browser an id before any event: should the stream drop
	// before the first one, it comes back with Last-Event-ID and gets what
	// was published meanwhile instead of starting afresh.
	s.buf = AppendPosition(s.buf, start)
	return s.flush()
}

// replay sends the retained entries after from, up to at least upTo, with
// a gap event first when some after from may have been lost. It retries
// while the store does not answer; false when the stream must end.
func (s *stream) replay(from, upTo notice.ID) bool {
	return s.replayFrom(from, upTo, true)
}

// skewMargin is how far before its headers a stream opened during an
// outage replays from, for clocks of noticed and Redis that disagree.
const skewMargin = 2 * time.Second

// replayFrom is replay, with the gap check optional.
func (s *stream) replayFrom(from, upTo notice.ID, checkGap bool) bool {
	after, first := from, true
	backoff := retry.New(50*time.Millisecond, 2*time.Second)
	for first || after.Less(upTo) {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		batches, err := s.h.store.Read(ctx, []routing.Cursor{{
			User: s.conn.User(), After: after, Count: replayBatch, CheckGap: first && checkGap,
		}})
		cancel()
		if err != nil {
			if s.ctx.Err() != nil {
				return false
			}
			s.h.m.BackendErrors.WithLabelValues("replay").Inc()
			s.h.log.Warn("replay read failed; retrying", "err", err)
			if !s.idle(nil, time.After(backoff.Next())) {
				return false
			}
			continue
		}
		b := batches[0]
		if first && b.Gap {
			s.buf = AppendGap(s.buf, from)
			s.h.m.GapsSent.Inc()
		}
		if first && b.Ahead {
			// The client's id is past all its user's stream ever held:
			// nothing after it will ever be read. The stream goes on from
			// where this instance reads, and gives the browser that
			// position, so that a reconnect does not ask from beyond the
			// newest entry again.
			s.lastSent = upTo
			s.buf = AppendPosition(s.buf, upTo)
			return s.flush()
		}
		first = false
		for _, e := range b.Entries {
			s.buf = AppendEntry(s.buf, e)
			after = e.ID
			if len(s.buf) >= maxKeptBuffer/2 && !s.flush() {
				return false
			}
		}
		if !s.flush() {
			return false
		}
		s.h.m.EventsReplayed.Add(float64(len(b.Entries)))
		s.h.m.EventsDelivered.Add(float64(len(b.Entries)))
		if s.lastSent.Less(after) {
			s.lastSent = after
		}
		if len(b.Entries) < replayBatch {
			break
		}
	}
	return true
}
