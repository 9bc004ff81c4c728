package inbox

import (
	"context"
	"slices"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// Store is what the inbox reads and writes: a routing.Store that has the
// Backlog ability.
type Store interface {
	routing.Store
	routing.Backlog
}

// Backward reads start small and grow: most users' latest mark is a few
// entries back, and a stream opening should not carry hundreds of
// entries from Redis to find it.
const (
	firstPage = 16
	page      = 256
)

func grow(n int) int { return min(n*4, page) }

// view is a user's stream as the inbox sees it at one moment.
type view struct {
	state  State
	newest notice.ID // newest retained entry, marks included; zero: none
	oldest notice.ID // oldest retained entry; zero: none
}

// Current returns user's read state as it is now.
func Current(ctx context.Context, st Store, user string) (State, error) {
	v, err := look(ctx, st, user, notice.Last, false)
	return v.state, err
}

// At returns user's read state as it was at the entry id at: the marks
// and entries up to it. A stream that then replays the entries after at
// brings it up to date as a client applies them (a mark sets the state,
// each other entry is one more unread), so that nothing is counted twice.
func At(ctx context.Context, st Store, user string, at notice.ID) (State, error) {
	before := notice.Last
	if at != notice.Last {
		before = next(at)
	}
	v, err := look(ctx, st, user, before, false)
	return v.state, err
}

// next returns the id just above id (id is not notice.Last).
func next(id notice.ID) notice.ID {
	if id.Seq < 1<<64-1 {
		return notice.ID{Ms: id.Ms, Seq: id.Seq + 1}
	}
	return notice.ID{Ms: id.Ms + 1}
}

// look reads the newest entries back to the latest read mark, whose state
// plus the entries after it give the state now. The mark's count stays
// exact as long as nothing it counted has been trimmed since, which holds
// when the oldest retained entry is not after its upTo; otherwise the
// entries the mark counted are counted again, as far as they are retained.
// Only entries below before are looked at (notice.Last: all). The oldest
// retained entry costs a read of its own: it is read only when the
// state depends on it (the mark counted unread entries, or holds single
// ids) or withOldest asks for it.
func look(ctx context.Context, st Store, user string, before notice.ID, withOldest bool) (view, error) {
	var v view
	after := 0
	var mark *State
	for size := firstPage; mark == nil; size = grow(size) {
		entries, err := st.ReadBack(ctx, user, before, size)
		if err != nil {
			return view{}, err
		}
		for _, e := range entries {
			if v.newest.IsZero() {
				v.newest = e.ID
			}
			before = e.ID
			if s, ok := isMark(e); ok {
				mark = &s
				break
			}
			if e.Event != EventRead {
				after++
			}
		}
		if len(entries) < size {
			break
		}
	}
	if mark == nil {
		v.state.Unread = after
		if !v.newest.IsZero() {
			v.oldest = before
		}
		return v, nil
	}
	s := *mark
	if !withOldest && s.Unread == 0 && len(s.IDs) == 0 {
		v.state = s
		v.state.Unread = after
		return v, nil
	}
	batches, err := st.Read(ctx, []routing.Cursor{{User: user, After: notice.Zero, Count: 1}})
	if err != nil {
		return view{}, err
	}
	if len(batches[0].Entries) > 0 {
		v.oldest = batches[0].Entries[0].ID
	}
	s.IDs = retained(s.IDs, v.oldest)
	if s.Unread > 0 && s.UpTo.Less(v.oldest) {
		// Some of what the mark counted may be gone: count what is left
		// between its upTo and the mark.
		n, err := countUnread(ctx, st, user, before, s)
		if err != nil {
			return view{}, err
		}
		s.Unread = n
	}
	s.Unread += after
	v.state = s
	return v, nil
}

// countUnread counts the unread notifications of s below before (and
// after s.UpTo), reading back.
func countUnread(ctx context.Context, st Store, user string, before notice.ID, s State) (int, error) {
	n := 0
	for size := firstPage; ; size = grow(size) {
		entries, err := st.ReadBack(ctx, user, before, size)
		if err != nil {
			return 0, err
		}
		for _, e := range entries {
			if !s.UpTo.Less(e.ID) {
				return n, nil
			}
			before = e.ID
			if e.Event != EventRead && !s.Read(e.ID) {
				n++
			}
		}
		if len(entries) < size {
			return n, nil
		}
	}
}

// retained drops the ids below oldest: entries no longer kept need no
// mark, and dropping them keeps a mark's size bounded by the stream's.
func retained(ids []notice.ID, oldest notice.ID) []notice.ID {
	i, _ := slices.BinarySearchFunc(ids, oldest, notice.ID.Compare)
	return slices.Clip(ids[i:])
}
