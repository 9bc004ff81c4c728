// Package memstore is the embedded backend: users' streams kept in this
// process, for a single instance that needs nothing else installed. It
// behaves like the Redis backend (ids, retention, gaps), but nothing
// survives a restart and no other instance can see it.
package memstore

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/noticed/noticed/internal/embedded"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// Options set retention, as -stream-maxlen and -stream-ttl do for Redis.
type Options struct {
	MaxLen int           // entries kept per user; 0 keeps all
	TTL    time.Duration // a stream is dropped this long after its last entry; 0 never
	// Now is the clock; tests may set it. Defaults to time.Now.
	Now func() time.Time
}

// Store keeps every user's stream in memory.
type Store struct {
	opts    Options
	follows embedded.Follows

	mu      sync.Mutex
	streams map[string]*stream

	sweeper *embedded.Sweeper
}

type stream struct {
	entries []notice.Entry
	last    notice.ID // newest id ever added, retained or not
	expires time.Time
}

var _ routing.Store = (*Store)(nil)

// New makes an empty store and starts its expiry sweeper.
func New(opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{opts: opts, streams: make(map[string]*stream)}
	s.sweeper = embedded.StartSweeper(opts.TTL, s.sweep)
	return s
}

func (s *Store) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for user, st := range s.streams {
		if s.expired(st, now) {
			delete(s.streams, user)
		}
	}
}

func (s *Store) expired(st *stream, now time.Time) bool {
	return s.opts.TTL > 0 && !now.Before(st.expires)
}

// live returns user's stream, dropping it first if it has expired, as
// Redis does with a key whose time to live ran out. Callers hold s.mu.
func (s *Store) live(user string, now time.Time) *stream {
	st := s.streams[user]
	if st != nil && s.expired(st, now) {
		delete(s.streams, user)
		return nil
	}
	return st
}

// Append adds each message with an id like Redis would give it (see
// embedded.NextID).
func (s *Store) Append(ctx context.Context, msgs []routing.Message) ([]notice.ID, error) {
	added, err := s.AppendChained(ctx, msgs)
	if err != nil {
		return nil, err
	}
	return routing.IDs(added), nil
}

// AppendChained is Append, with the id of the entry before each one.
func (s *Store) AppendChained(ctx context.Context, msgs []routing.Message) ([]routing.Appended, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	added := make([]routing.Appended, len(msgs))
	s.mu.Lock()
	now := s.opts.Now()
	for i, m := range msgs {
		if st := s.live(m.User, now); st != nil && len(st.entries) > 0 {
			added[i].Prev = st.entries[len(st.entries)-1].ID
		}
		added[i].ID, added[i].Chained = s.add(m, now), true
	}
	s.mu.Unlock()
	s.follows.Appended(msgs)
	return added, nil
}

// add appends m to its user's stream with retention; callers hold s.mu.
func (s *Store) add(m routing.Message, now time.Time) notice.ID {
	st := s.live(m.User, now)
	if st == nil {
		st = &stream{}
		s.streams[m.User] = st
	}
	id := embedded.NextID(st.last, now)
	st.last = id
	st.entries = append(st.entries, notice.Entry{ID: id, Event: m.Event, Data: m.Data})
	if s.opts.MaxLen > 0 && len(st.entries) > s.opts.MaxLen {
		// Reslicing drops the oldest; append's next reallocation
		// releases them, so trimming costs no copy per entry.
		drop := len(st.entries) - s.opts.MaxLen
		clear(st.entries[:drop])
		st.entries = st.entries[drop:]
	}
	st.expires = now.Add(s.opts.TTL)
	return id
}

// Read answers each cursor from the retained entries, with embedded.Gap's
// rule for gaps.
func (s *Store) Read(ctx context.Context, cursors []routing.Cursor) ([]routing.Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]routing.Batch, len(cursors))
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for i, c := range cursors {
		st := s.live(c.User, now)
		if st == nil || len(st.entries) == 0 {
			out[i].Gap, out[i].Ahead = embedded.Gap(c, notice.Zero, notice.Zero, false)
			continue
		}
		out[i].Gap, out[i].Ahead = embedded.Gap(c, st.entries[0].ID, st.entries[len(st.entries)-1].ID, true)
		from := sort.Search(len(st.entries), func(j int) bool { return c.After.Less(st.entries[j].ID) })
		to := len(st.entries)
		if c.Count > 0 && to-from > c.Count {
			to = from + c.Count
		}
		if from < to {
			out[i].Entries = append([]notice.Entry(nil), st.entries[from:to]...)
		}
	}
	return out, nil
}

// SetNotifier names who hears of new entries of followed users.
func (s *Store) SetNotifier(n routing.Notifier) { s.follows.SetNotifier(n) }

// Followed returns how many users are followed, for tests and metrics.
func (s *Store) Followed() int { return s.follows.Followed() }

// Follow starts notifications for user and returns its newest entry id.
func (s *Store) Follow(ctx context.Context, user string) (notice.ID, error) {
	if err := ctx.Err(); err != nil {
		return notice.Zero, err
	}
	s.follows.Follow(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.live(user, s.opts.Now()); st != nil && len(st.entries) > 0 {
		return st.entries[len(st.entries)-1].ID, nil
	}
	return notice.Zero, nil
}

// Unfollow stops notifications for user.
func (s *Store) Unfollow(ctx context.Context, user string) error {
	s.follows.Unfollow(user)
	return nil
}

// Ping always succeeds: the store is this process.
func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

// Close stops the sweeper.
func (s *Store) Close() error {
	s.sweeper.Stop()
	return nil
}
