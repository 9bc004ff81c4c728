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
	opts Options

	mu       sync.Mutex
	streams  map[string]*stream
	followed map[string]bool
	notifier routing.Notifier

	stop      chan struct{}
	closeOnce sync.Once
	sweeper   sync.WaitGroup
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
	s := &Store{
		opts:     opts,
		streams:  make(map[string]*stream),
		followed: make(map[string]bool),
		stop:     make(chan struct{}),
	}
	if opts.TTL > 0 {
		s.sweeper.Add(1)
		go s.sweep(sweepEvery(opts.TTL))
	}
	return s
}

// sweepEvery keeps expired streams from holding memory for much longer
// than their time to live, without waking often for a long one.
func sweepEvery(ttl time.Duration) time.Duration {
	return min(max(ttl/4, 10*time.Millisecond), time.Minute)
}

func (s *Store) sweep(every time.Duration) {
	defer s.sweeper.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			now := s.opts.Now()
			for user, st := range s.streams {
				if s.expired(st, now) {
					delete(s.streams, user)
				}
			}
			s.mu.Unlock()
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

// Append adds each message with an id like Redis would give it: the current
// millisecond, or the stream's last id plus one when the clock has not
// moved past it.
func (s *Store) Append(ctx context.Context, msgs []routing.Message) ([]notice.ID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids := make([]notice.ID, len(msgs))
	var notify []string
	s.mu.Lock()
	now := s.opts.Now()
	for i, m := range msgs {
		st := s.live(m.User, now)
		if st == nil {
			st = &stream{}
			s.streams[m.User] = st
		}
		id := notice.ID{Ms: uint64(now.UnixMilli())}
		if id.Compare(st.last) <= 0 {
			id = notice.ID{Ms: st.last.Ms, Seq: st.last.Seq + 1}
		}
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
		ids[i] = id
		if s.followed[m.User] && s.notifier != nil {
			notify = append(notify, m.User)
		}
	}
	n := s.notifier
	s.mu.Unlock()
	for _, u := range notify {
		n.Changed(u)
	}
	return ids, nil
}

// Read answers each cursor from the retained entries. A gap is reported
// when the cursor's entry is no longer retained: whatever followed it may
// have been trimmed or expired with it.
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
		if st == nil {
			out[i].Gap = c.CheckGap && !c.After.IsZero()
			out[i].Ahead = out[i].Gap
			continue
		}
		if c.CheckGap && !c.After.IsZero() {
			if st.last.Less(c.After) {
				out[i].Gap, out[i].Ahead = true, true
			} else if len(st.entries) == 0 {
				out[i].Gap = c.After.Less(st.last)
			} else {
				out[i].Gap = c.After.Less(st.entries[0].ID)
			}
		}
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
func (s *Store) SetNotifier(n routing.Notifier) {
	s.mu.Lock()
	s.notifier = n
	s.mu.Unlock()
}

// Follow starts notifications for user and returns its newest entry id.
func (s *Store) Follow(ctx context.Context, user string) (notice.ID, error) {
	if err := ctx.Err(); err != nil {
		return notice.Zero, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followed[user] = true
	if st := s.live(user, s.opts.Now()); st != nil && len(st.entries) > 0 {
		return st.entries[len(st.entries)-1].ID, nil
	}
	return notice.Zero, nil
}

// Unfollow stops notifications for user.
func (s *Store) Unfollow(ctx context.Context, user string) error {
	s.mu.Lock()
	delete(s.followed, user)
	s.mu.Unlock()
	return nil
}

// Ping always succeeds: the store is this process.
func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

// Close stops the sweeper.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	s.sweeper.Wait()
	return nil
}

// Followed returns how many users are followed, for tests and metrics.
func (s *Store) Followed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.followed)
}
