package routing

import (
	"context"
	"time"

	"github.com/noticed/noticed/internal/notice"
)

// Append adds msgs to their users' streams through the store and returns
// the new ids in the messages' order.
//
// When the store says which entry came before each one (ChainAppender),
// an entry whose predecessor is the newest its user's streams here have
// been given is next in line for them: it is fanned out at once, on the
// caller's goroutine, rather than after the store's notification and a
// read, which cost another round trip. Anything else (another producer's
// entry came between, the predecessor is not known) is left to that read,
// which comes all the same for a user followed here; it skips the frames
// already fanned out, so nothing is sent twice. While a read is to check
// the user's stream for lost entries (a recheck or resync is pending),
// nothing is offered: the check starts from the cursor.
func (h *Hub) Append(ctx context.Context, msgs []Message) ([]notice.ID, error) {
	chain, ok := h.store.(ChainAppender)
	if !ok {
		return h.store.Append(ctx, msgs)
	}
	added, err := chain.AppendChained(ctx, msgs)
	if err != nil {
		return nil, err
	}
	round := time.Now()
	ids := make([]notice.ID, len(added))
	var woken []func(bool)
	for i, a := range added {
		ids[i] = a.ID
		woken = h.offer(msgs[i], a, woken)
	}
	wakeAll(woken, round)
	return ids, nil
}

// offer fans m, added as a, out to its user's streams here when a.Prev is
// their cursor, and appends the streams to wake to woken.
func (h *Hub) offer(m Message, a Appended, woken []func(bool)) []func(bool) {
	if !a.Chained || !h.follows(m.User, a.Prev) {
		return woken
	}
	// Encoded outside the lock, as a read's entries are.
	frame := []Frame{{ID: a.ID, Bytes: h.encode(nil, notice.Entry{ID: a.ID, Event: m.Event, Data: m.Data})}}
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[m.User]
	// Checked again: a read or another offer may have moved the cursor
	// meanwhile (to a.ID, or after a failover anywhere).
	if u == nil || u.state != ready || u.cursor != a.Prev || u.recheck || h.resync {
		return woken
	}
	return h.queue(u, frame, false, woken)
}

// follows reports whether user's streams here have been given every entry
// up to prev and nothing after it.
func (h *Hub) follows(user string, prev notice.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[user]
	return u != nil && u.state == ready && u.cursor == prev && !u.recheck && !h.resync
}
