package routing

import (
	"context"
	"time"

	"github.com/noticed/noticed/internal/retry"
)

// maxUsersPerRead bounds one batched read, so one round trip stays small.
const maxUsersPerRead = 512

// readBatch is how many entries one read takes per user.
const readBatch = 256

// InlineBudget is how long the goroutine that fans frames out (the hub's
// reader, per read, or a publisher's, per Hub.Append) may spend writing
// them to streams itself. Writing at once saves a
// goroutine start and a scheduler wake-up per event (docs/benchmarks.md);
// past the budget, the streams of a large fan-out are written on their own
// goroutines, on every core.
const InlineBudget = 500 * time.Microsecond

// Run reads changed users' new entries and fans them out until Close.
func (h *Hub) Run() {
	defer close(h.stopped)
	backoff := retry.New(storeRetryFirst, storeRetryMax)
	for {
		select {
		case <-h.stop:
			return
		case <-h.wake:
		}
		// No waiting for more to gather: while one read is under way the
		// next notifications queue, and the next read takes them all.
		for {
			cursors := h.takeDirty()
			if len(cursors) == 0 {
				break
			}
			if err := h.readAndFanOut(cursors); err != nil {
				h.m.BackendErrors.WithLabelValues("read").Inc()
				h.log.Warn("reading new entries failed; retrying", "err", err, "users", len(cursors))
				h.markFailed(cursors)
				if !backoff.Wait(h.stop) {
					return
				}
				continue
			}
			backoff.Reset()
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
				u.recheck = true
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
		cursors = append(cursors, Cursor{User: name, After: u.cursor, Count: readBatch, CheckGap: u.recheck, Delivered: true})
		u.recheck = false
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

// markFailed marks users whose read failed: the store may come back
// without what was added meanwhile, so the next read checks for a gap.
func (h *Hub) markFailed(cursors []Cursor) {
	h.mu.Lock()
	for _, c := range cursors {
		h.dirty[c.User] = struct{}{}
		if u := h.users[c.User]; u != nil {
			u.recheck = true
		}
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
	if err := h.checkLagging(ctx, cursors, batches); err != nil {
		return err
	}
	h.round = time.Now()
	for i, b := range batches {
		if b.Gap {
			h.log.Warn("entries were removed before they could be delivered; the user's streams get a gap event")
			h.fanOut(cursors[i].User, nil, true)
		}
		if len(b.Entries) == 0 {
			continue
		}
		// Encode outside the lock, once per entry for all streams.
		frames := make([]Frame, len(b.Entries))
		for j, e := range b.Entries {
			frames[j] = Frame{ID: e.ID, Bytes: h.encode(nil, e)}
		}
		h.fanOut(cursors[i].User, frames, false)
		if len(b.Entries) >= cursors[i].Count {
			h.markDirty(cursors[i : i+1]) // more is waiting
		}
	}
	return nil
}

// checkLagging asks, for each batch read without a gap check that holds
// as many entries as the store keeps (or a full batch), whether entries
// above its cursor were trimmed before this read: the hub is that far
// behind on the user, and a stream must never skip entries silently. It
// costs a second read only while the hub is behind.
func (h *Hub) checkLagging(ctx context.Context, cursors []Cursor, batches []Batch) error {
	var idx []int
	var check []Cursor
	for i, b := range batches {
		full := cursors[i].Count
		if h.opts.TrimLen > 0 {
			full = min(full, h.opts.TrimLen)
		}
		if !cursors[i].CheckGap && len(b.Entries) >= full {
			idx = append(idx, i)
			check = append(check, Cursor{User: cursors[i].User, After: cursors[i].After, Count: 1, CheckGap: true})
		}
	}
	if len(check) == 0 {
		return nil
	}
	res, err := h.store.Read(ctx, check)
	if err != nil {
		return err
	}
	for j, b := range res {
		if b.Gap {
			batches[idx[j]].Gap = true
		}
	}
	return nil
}

// fanOut queues frames above the user's cursor on each of its streams,
// after a gap frame when gap is set. A stream whose queue is full is
// closed as slow rather than waited for: its browser comes back with
// Last-Event-ID and replays from the store.
func (h *Hub) fanOut(name string, frames []Frame, gap bool) {
	h.mu.Lock()
	h.woken = h.queue(h.users[name], frames, gap, h.woken)
	h.mu.Unlock()
	h.woken = wakeAll(h.woken, h.round)
}

// wakeAll wakes the streams of woken, outside the hub's lock: a stream may
// write what was queued at once, on the caller's goroutine, while the
// fan-out begun at round is within its budget; past it, streams write on
// goroutines of their own, in parallel. It returns woken emptied.
func wakeAll(woken []func(bool), round time.Time) []func(bool) {
	for i, wake := range woken {
		wake(time.Since(round) < InlineBudget)
		woken[i] = nil
	}
	return woken[:0]
}

// queue is fanOut's work under the hub's lock; it appends the streams to
// wake to woken.
func (h *Hub) queue(u *user, frames []Frame, gap bool, woken []func(bool)) []func(bool) {
	if u == nil || u.state != ready {
		return woken
	}
	// Skip what was fanned out already: an append's own fan-out (see
	// Hub.Append) or a resync raced this read.
	first := len(frames)
	for j := range frames {
		if u.cursor.Less(frames[j].ID) {
			first = j
			break
		}
	}
	frames = frames[first:]
	if len(frames) == 0 && !gap {
		return woken
	}
	if len(frames) > 0 {
		u.cursor = frames[len(frames)-1].ID
		h.taken(frames)
	}
	for _, c := range u.conns {
		if c.closed() {
			continue // it replays from its own last id
		}
		if gap && !c.push(gapFrame) {
			continue
		}
		for j := range frames {
			if !c.push(&frames[j]) {
				break
			}
		}
		if c.wake != nil {
			woken = append(woken, c.wake)
		}
	}
	return woken
}

// taken counts frames taken for fan-out, once each whichever way they
// came, with the wait each entry had since its id. An id ahead of this
// clock (the backend's runs ahead, or a producer chose it) counts as no
// wait.
func (h *Hub) taken(frames []Frame) {
	now := uint64(max(time.Now().UnixMilli(), 0))
	for _, f := range frames {
		if f.ID.Ms <= now {
			h.m.ReadDelay.Observe(float64(now-f.ID.Ms) / 1000)
		} else {
			h.m.ReadDelay.Observe(0)
		}
	}
	h.m.EventsRead.Add(float64(len(frames)))
}
