// This file holds shutdown tracking of taken-over streams: net/http's
// Shutdown does not see hijacked connections, so the Handler keeps them,
// tells each to say retry and close when the hub closes, and Wait waits for
// them (or closes what is left when its context ends).

package sse

import (
	"context"
)

// track registers a hijacked stream; the first one starts the watch for
// the hub closing, which tells every tracked stream to end.
func (h *Handler) track(s *stream) {
	h.mu.Lock()
	h.streams[s] = struct{}{}
	h.mu.Unlock()
	h.watching.Do(func() {
		go func() {
			<-h.hub.Closing()
			h.mu.Lock()
			all := make([]*stream, 0, len(h.streams))
			for s := range h.streams {
				all = append(all, s)
			}
			h.mu.Unlock()
			for _, s := range all {
				s.wake(wakeEnd)
			}
		}()
	})
}

// watchLeave has the Handler's leaveWatch (made for the first stream it
// can watch) wait for s's client to leave, or, where it cannot, a
// goroutine of the stream's own (watch).
func (h *Handler) watchLeave(s *stream) {
	if s.raw != nil && !h.opts.ownWatch {
		h.leaveOnce.Do(func() {
			var err error
			if h.leave, err = newLeaveWatch(h.hub.Closing()); err != nil {
				h.log.Warn("each stream keeps a goroutine to see its client leave", "err", err)
			}
		})
		if h.leave != nil && h.leave.add(s) {
			return
		}
	}
	go s.watch()
}

func (h *Handler) untrack(s *stream) {
	if s.leave != nil {
		s.leave.remove(s)
	}
	h.mu.Lock()
	delete(h.streams, s)
	if len(h.streams) == 0 && h.empty != nil {
		close(h.empty)
		h.empty = nil
	}
	h.mu.Unlock()
}

// Wait waits until every hijacked stream has closed (after the hub closed,
// each says retry and closes), or ctx ends; then it closes what is left.
// net/http's Shutdown does not wait for hijacked connections: call Wait
// after it.
func (h *Handler) Wait(ctx context.Context) error {
	h.mu.Lock()
	if len(h.streams) == 0 {
		h.mu.Unlock()
		return nil
	}
	if h.empty == nil {
		h.empty = make(chan struct{})
	}
	empty := h.empty
	h.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
	}
	h.mu.Lock()
	for s := range h.streams {
		_ = s.nc.Close()
	}
	h.mu.Unlock()
	return ctx.Err()
}
