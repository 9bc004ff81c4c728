package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// MaxIDs bounds the ids one mark request may name.
const MaxIDs = 1000

// maxTries bounds how often Mark computes its state again because the
// stream moved on (an event or another device's mark) before its append.
const maxTries = 16

// ErrBusy is Mark's answer when the stream kept moving on for maxTries;
// the caller answers 503, and the client tries again.
var ErrBusy = fmt.Errorf("%w: the stream changed under every try of a read mark", routing.ErrUnavailable)

// Mark moves user's read state forward: every entry up to upTo (if not
// nil) is read, and so is each of ids. What is already read stays read;
// a mark that changes nothing appends nothing. An id past the user's
// newest entry, or within the retained ones but not one of them, is
// ErrUnknownID; an id of a trimmed entry is accepted, since it may well
// have been the user's. It returns the state after the mark.
func Mark(ctx context.Context, st Store, user string, upTo *notice.ID, ids []notice.ID) (State, error) {
	if len(ids) > MaxIDs {
		return State{}, fmt.Errorf("%w: at most %d ids in one mark", ErrUnknownID, MaxIDs)
	}
	checked := false
	for range maxTries {
		v, err := look(ctx, st, user, notice.Last, true)
		if err != nil {
			return State{}, err
		}
		if !checked {
			if err := check(ctx, st, user, v, upTo, ids); err != nil {
				return State{}, err
			}
			checked = true
		}
		next, changed := merge(v, upTo, ids)
		if !changed {
			return v.state, nil
		}
		if next.Unread, err = countUnread(ctx, st, user, notice.Last, next); err != nil {
			return State{}, err
		}
		data, err := json.Marshal(next)
		if err != nil {
			return State{}, err
		}
		_, err = st.AppendIfNewest(ctx, routing.Message{User: user, Event: EventRead, Data: string(data)}, v.newest)
		if errors.Is(err, routing.ErrNotNewest) {
			continue
		}
		if err != nil {
			return State{}, err
		}
		return next, nil
	}
	return State{}, ErrBusy
}

// merge returns v's state with upTo and ids read, and whether that
// changed anything.
func merge(v view, upTo *notice.ID, ids []notice.ID) (State, bool) {
	cur := v.state
	next := State{UpTo: cur.UpTo}
	if upTo != nil && cur.UpTo.Less(*upTo) {
		next.UpTo = *upTo
	}
	all := append(slices.Clone(cur.IDs), ids...)
	slices.SortFunc(all, notice.ID.Compare)
	all = slices.Compact(all)
	for _, id := range all {
		if next.UpTo.Less(id) && !id.Less(v.oldest) {
			next.IDs = append(next.IDs, id)
		}
	}
	changed := next.UpTo != cur.UpTo || !slices.Equal(next.IDs, cur.IDs)
	if next.IDs == nil {
		next.IDs = []notice.ID{}
	}
	return next, changed
}

// check refuses ids the user never had: past the newest entry, or among
// the retained ones but not one of them. Single ids must name
// notifications, not read marks; upTo may name any entry (a client marks
// up to the last id it saw, whatever that was).
func check(ctx context.Context, st Store, user string, v view, upTo *notice.ID, ids []notice.ID) error {
	type probe struct {
		id     notice.ID
		single bool
	}
	var probes []probe
	if upTo != nil {
		probes = append(probes, probe{*upTo, false})
	}
	for _, id := range ids {
		probes = append(probes, probe{id, true})
	}
	var cursors []routing.Cursor
	var asked []probe
	for _, p := range probes {
		if v.newest.Less(p.id) || p.id.IsZero() {
			return fmt.Errorf("%w: %s", ErrUnknownID, p.id)
		}
		if p.id.Less(v.oldest) {
			continue // trimmed: it may have been the user's
		}
		cursors = append(cursors, routing.Cursor{User: user, After: before(p.id), Count: 1})
		asked = append(asked, p)
	}
	if len(cursors) == 0 {
		return nil
	}
	batches, err := st.Read(ctx, cursors)
	if err != nil {
		return err
	}
	for i, p := range asked {
		es := batches[i].Entries
		if len(es) == 0 || es[0].ID != p.id {
			return fmt.Errorf("%w: %s", ErrUnknownID, p.id)
		}
		if p.single && es[0].Event == EventRead {
			return fmt.Errorf("%w: %s is a read mark, not a notification", ErrUnknownID, p.id)
		}
	}
	return nil
}

// before returns the id just below id (id is not zero).
func before(id notice.ID) notice.ID {
	if id.Seq > 0 {
		return notice.ID{Ms: id.Ms, Seq: id.Seq - 1}
	}
	return notice.ID{Ms: id.Ms - 1, Seq: 1<<64 - 1}
}
