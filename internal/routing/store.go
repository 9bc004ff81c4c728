package routing

import (
	"context"
	"errors"

	"github.com/noticed/noticed/internal/notice"
)

// Store is the one seam between the fan-out and where events live. The
// memory and Redis backends implement it, and storetest.Run holds both to
// the same behaviour.
type Store interface {
	// Append adds one entry per message, each to its user's stream, applying
	// retention (max length, time to live), and returns the new ids in the
	// messages' order.
	Append(ctx context.Context, msgs []Message) ([]notice.ID, error)

	// Read returns, for each cursor, up to Count entries with ids above
	// After, oldest first. With CheckGap set it also reports whether entries
	// above After may have been removed (trimmed, expired or deleted) before
	// they could be read; After of zero never reports a gap.
	Read(ctx context.Context, cursors []Cursor) ([]Batch, error)

	// SetNotifier names who is told of new entries. It is called once,
	// before the first Follow.
	SetNotifier(n Notifier)

	// Follow starts telling the notifier about new entries of user's stream
	// and returns the id of its newest entry (zero when it has none). When
	// Follow returns, every entry added later is guaranteed to be notified.
	// The hub calls it once per user, when the user's first stream opens.
	Follow(ctx context.Context, user string) (notice.ID, error)

	// Unfollow stops the notifications for user; after it the store keeps
	// nothing about following that user.
	Unfollow(ctx context.Context, user string) error

	// Ping reports whether the store answers now.
	Ping(ctx context.Context) error

	Close() error
}

// ChainAppender is a Store that can say, of each entry it appends, which
// entry came just before it in its user's stream. The hub uses it to fan
// out the entries this instance appends without waiting for their
// notification and a read (see Hub.Append).
type ChainAppender interface {
	// AppendChained is Append, with each entry's predecessor.
	AppendChained(ctx context.Context, msgs []Message) ([]Appended, error)
}

// Appended is one entry a ChainAppender added.
type Appended struct {
	ID notice.ID
	// Prev, when Chained, is the id of the entry just before ID in its
	// user's stream: zero when ID is the stream's first. No entry lies
	// between Prev and ID, whoever else appends.
	Prev notice.ID
	// Chained says Prev is known. A store may not know it for some entries
	// (another producer's came at the same moment, say): those are
	// delivered by the read their notification brings.
	Chained bool
}

// Notifier is told by the store when followed streams change. Its methods
// must not block: the store calls them from its own reading goroutine.
type Notifier interface {
	// Changed says that user's stream may have new entries.
	Changed(user string)
	// Resync says the store may have missed notifications (its connection
	// dropped and came back): every followed user must be read again.
	Resync()
	// Recheck says the store may have missed notifications for user, or
	// lost entries of it (its subscription moved to another Redis node):
	// read it again, asking whether entries above its cursor were lost.
	Recheck(user string)
}

// Message is one entry to append.
type Message struct {
	User  string
	Event string // empty: no "event" field
	Data  string
}

// Cursor asks for the entries of User's stream after After.
type Cursor struct {
	User     string
	After    notice.ID
	Count    int
	CheckGap bool
	// Delivered says After is an id this reader got from the store itself
	// (never one a client sent). When a gap check finds the stream no
	// longer reaches it (Ahead: a failover lost entries this reader had
	// read), a store that can records the loss in the stream, so that
	// every other reader still below After is told of a gap.
	Delivered bool
}

// Batch answers one Cursor.
type Batch struct {
	Entries []notice.Entry
	// Gap is set (only when asked) when entries above the cursor may have
	// been removed before they were read.
	Gap bool
	// Ahead is set (only when a gap check is asked) when the cursor is
	// past the newest entry the user's stream ever had: an entry lost with
	// a Redis that restarted or failed over, a Redis whose clock went
	// back, or a made-up id. Nothing after such a cursor will ever be
	// read, so its reader must start again from the newest entry. Gap is
	// set too.
	Ahead bool
}

// ErrUnavailable wraps every error that means the store cannot be reached
// right now; callers retry or answer 503.
var ErrUnavailable = errors.New("backend unavailable")

// IDs returns the ids of added, in order: Append's answer, for a store
// whose Append is its AppendChained.
func IDs(added []Appended) []notice.ID {
	ids := make([]notice.ID, len(added))
	for i, a := range added {
		ids[i] = a.ID
	}
	return ids
}
