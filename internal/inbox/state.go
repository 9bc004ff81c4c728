// Package inbox builds what an application's notification inbox needs on
// top of a user's stream: history newest first, and read state shared by
// all of the user's devices. Read marks are entries of the user's own
// stream (event "read", data the whole new state), so they reach every
// open stream on every instance in order with the events around them,
// and are replayed after a reconnect like any other entry, with no key
// or channel of their own: on Redis they live on the user's one key and
// its hash tag.
package inbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/noticed/noticed/internal/notice"
)

// EventRead is the event type of read marks. Publishing it is refused:
// a producer's "read" would be taken for the user's own read state.
const EventRead = "read"

// Errors a caller answers with 400.
var (
	ErrUnknownID = errors.New("not an entry of this user")
	ErrBadState  = errors.New("bad read state")
)

// State is a user's read state: every entry up to UpTo is read, and so is
// each of IDs (all above UpTo, ascending); Unread counts the retained
// entries after UpTo that are not in IDs, read marks left out.
type State struct {
	UpTo   notice.ID
	IDs    []notice.ID
	Unread int
}

type stateJSON struct {
	UpTo   string   `json:"upTo"`
	IDs    []string `json:"ids"`
	Unread int      `json:"unread"`
}

// MarshalJSON gives {"upTo":"<id>","ids":[…],"unread":N}, ids as strings
// like every id noticed sends.
func (s State) MarshalJSON() ([]byte, error) {
	j := stateJSON{UpTo: s.UpTo.String(), IDs: make([]string, len(s.IDs)), Unread: s.Unread}
	for i, id := range s.IDs {
		j.IDs[i] = id.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (s *State) UnmarshalJSON(b []byte) error {
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: %v", ErrBadState, err)
	}
	upTo, err := notice.ParseID(j.UpTo)
	if err != nil {
		return fmt.Errorf("%w: upTo: %v", ErrBadState, err)
	}
	ids := make([]notice.ID, 0, len(j.IDs))
	for _, t := range j.IDs {
		id, err := notice.ParseID(t)
		if err != nil {
			return fmt.Errorf("%w: ids: %v", ErrBadState, err)
		}
		ids = append(ids, id)
	}
	if j.Unread < 0 {
		return fmt.Errorf("%w: negative unread", ErrBadState)
	}
	*s = State{UpTo: upTo, IDs: ids, Unread: j.Unread}
	return nil
}

// Read reports whether the entry id is read in s.
func (s State) Read(id notice.ID) bool {
	if !s.UpTo.Less(id) {
		return true
	}
	_, found := slices.BinarySearchFunc(s.IDs, id, notice.ID.Compare)
	return found
}

// isMark reports whether e is a read mark, and its state.
func isMark(e notice.Entry) (State, bool) {
	if e.Event != EventRead {
		return State{}, false
	}
	var s State
	if err := json.Unmarshal([]byte(e.Data), &s); err != nil {
		return State{}, false
	}
	slices.SortFunc(s.IDs, notice.ID.Compare)
	return s, true
}
