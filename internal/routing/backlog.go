package routing

import (
	"context"
	"errors"

	"github.com/noticed/noticed/internal/notice"
)

// Backlog is the optional Store ability the inbox (history, read state)
// is built on. It is a separate interface, checked by type assertion, so
// that the fan-out's seam stays as small as the hub needs; every backend
// of noticed has it, and storetest holds each to the same behaviour.
type Backlog interface {
	// ReadBack returns up to count entries of user's stream with ids
	// below before, newest first; notice.Last reads from the newest.
	ReadBack(ctx context.Context, user string, before notice.ID, count int) ([]notice.Entry, error)

	// AppendIfNewest appends m, with the store's retention, only while
	// the newest retained entry of m.User's stream is newest (notice.Zero:
	// the stream is empty or gone); otherwise it appends nothing and
	// returns ErrNotNewest. It is the compare-and-set a read mark needs:
	// the state a mark carries was computed from the entries up to newest,
	// and two devices marking at once must not lose one another's marks.
	AppendIfNewest(ctx context.Context, m Message, newest notice.ID) (notice.ID, error)
}

// ErrNotNewest is AppendIfNewest's answer when the stream has moved on.
var ErrNotNewest = errors.New("the stream's newest entry is not the one expected")
