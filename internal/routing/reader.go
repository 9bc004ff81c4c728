package routing

import (
	"context"
	"time"
)

// maxUsersPerRead bounds one batched read, so one round trip stays small.
const maxUsersPerRead = 512

// Run reads changed users' new entries and fans them out until Close.
func (h *Hub) Run() {
	defer close(h.stopped)
	backoff := newBackoff()
	for {
		select {
		case <-h.stop:
			return
		case <-h.wake:
		}
		for {
			cursors := h.takeDirty()
			if len(cursors) == 0 {
				break
			}
			if err := h.readAndFanOut(cursors); err != nil {
				h.m.BackendErrors.WithLabelValues("read").Inc()
				h.log.Warn("reading new entries failed; retrying", "err", err, "users", len(cursors))
				h.markDirty(cursors)
				if !backoff.wait(h.stop) {
					return
				}
				continue
			}
			backoff = newBackoff()
		}
	}
}

// takeDirty returns a cursor for each user to read, at most
// maxUsersPerRead, and leaves the rest marked.
func (h *Hub) takeDirty() []Cursor {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.resync {
		h.resync = false
		for name, u := range h.users {
			if u.state == ready {
				h.dirty[name] = struct{}{}
			}
		}
	}
	if len(h.dirty) == 0 {
		return nil
	}
	cursors := make([]Cursor, 0, min(len(h.dirty), maxUsersPerRead))
	for name := range h.dirty {
		delete(h.dirty, name)
		u := h.users[name]
		if u == nil || u.state != ready {
			continue
		}
		cursors = append(cursors, Cursor{User: name, After: u.cursor, Count: h.opts.ReadBatch})
		if len(cursors) == maxUsersPerRead {
			break
		}
	}
	return cursors
}

func (h *Hub) markDirty(cursors []Cursor) {
	h.mu.Lock()
	for _, c := range cursors {
		h.dirty[c.User] = struct{}{}
	}
	h.mu.Unlock()
}

func (h *Hub) readAndFanOut(cursors []Cursor) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	batches, err := h.store.Read(ctx, cursors)
	if err != nil {
		return err
	}
	for i, b := range batches {
		if len(b.Entries) == 0 {
			continue
		}
		// Encode outside the lock, once per entry for all streams.
		frames := make([]Frame, len(b.Entries))
		for j, e := range b.Entries {
			frames[j] = Frame{ID: e.ID, Bytes: h.encode(nil, e)}
		}
		h.m.EventsRead.Add(float64(len(frames)))
		h.fanOut(cursors[i].User, frames)
		if len(b.Entries) >= cursors[i].Count {
			h.markDirty(cursors[i : i+1]) // more is waiting
		}
	}
	return nil
}

// fanOut queues frames above the user's cursor on each of its streams. A
// stream whose queue is full is closed as slow rather than waited for: its
// browser comes back with Last-Event-ID and replays from the store.
func (h *Hub) fanOut(name string, frames []Frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[name]
	if u == nil || u.state != ready {
		return
	}
	// Skip what was fanned out already (a resync raced a read).
	first := len(frames)
	for j := range frames {
		if u.cursor.Less(frames[j].ID) {
			first = j
			break
		}
	}
	if first == len(frames) {
		return
	}
	frames = frames[first:]
	u.cursor = frames[len(frames)-1].ID
	for _, c := range u.conns {
		// A stream that cannot take every frame is kicked; it replays.
		for j := range frames {
			select {
			case c.frames <- &frames[j]:
				continue
			default:
				c.kick(h)
			}
			break
		}
		if c.wake != nil {
			c.wake()
		}
	}
}
