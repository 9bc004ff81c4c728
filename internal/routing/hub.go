// Package routing decides which users this instance follows and fans each
// of their new entries out to their streams open here.
package routing

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/noticed/noticed/internal/metrics"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/retry"
)

// Encoder turns an entry into the bytes every stream of its user is sent.
// The hub calls it once per entry, however many streams receive it.
type Encoder func(dst []byte, e notice.Entry) []byte

// Frame is one encoded entry, shared read-only by every stream it goes to.
type Frame struct {
	ID    notice.ID
	Bytes []byte
	// Gap marks no entry but a loss: entries of the user were removed
	// before the hub could read them. Each stream announces it with its
	// own last id.
	Gap bool
}

// gapFrame is queued on every stream of a user who lost entries.
var gapFrame = &Frame{Gap: true}

// Options tune a Hub; zero values take the defaults.
type Options struct {
	// QueueLen is how many frames a stream may be behind before it is
	// closed as slow. Default 64.
	QueueLen int
	// MaxConnsPerUser and MaxConns limit open streams; 0 means no limit.
	MaxConnsPerUser int
	MaxConns        int
	// TrimLen is how many entries the store keeps per user (0: unknown).
	// A read that returns min(readBatch, TrimLen) entries means the hub is
	// behind enough that entries may have been trimmed before it read them,
	// and it asks the store.
	TrimLen int
	// Presence hears how many streams each user has open here whenever
	// that changes; nil: nobody.
	Presence Counter
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
}

// Counter is told, under the hub's lock and so in order, how many streams
// a user has open on this instance. It must not block.
type Counter interface {
	Counted(user string, n int)
}

// A store that does not answer is asked again after 50ms, doubling up to 2s.
const (
	storeRetryFirst = 50 * time.Millisecond
	storeRetryMax   = 2 * time.Second
)

// Errors Subscribe returns when a stream may not open.
var (
	ErrUserLimit = errors.New("too many streams open for this user")
	ErrFull      = errors.New("this instance has no room for more streams")
	ErrClosed    = errors.New("shutting down")
)

// Hub follows the users with open streams here and fans their entries out.
// A single reader goroutine reads every changed user's new entries in one
// batched call, so the cost per event does not grow with the number of
// users followed.
type Hub struct {
	store  Store
	encode Encoder
	opts   Options
	m      *metrics.Metrics
	log    *slog.Logger

	mu     sync.Mutex
	users  map[string]*user
	conns  int
	dirty  map[string]struct{}
	resync bool
	closed bool

	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}

	woken []func(bool) // fanOut's, reused: the streams to wake after the lock
	round time.Time    // when the current read's fan-out began
}

// userState is where a user is in following: the hub never runs two
// follow or unfollow calls for one user at once.
type userState int

const (
	following userState = iota // Follow under way; cursor not yet known
	ready                      // entries above cursor are fanned out
	leaving                    // last stream closed; Unfollow under way
)

type user struct {
	name   string
	state  userState
	cursor notice.ID // newest entry fanned out
	conns  []*Conn
	ready  chan struct{} // closed when state becomes ready
	// rejoined is set when a stream opens while leaving: it waits on a
	// fresh ready channel, closed once following resumes.
	rejoined bool
	// recheck asks the next read whether entries above cursor were lost
	// (the store may have missed notifications, or restarted empty).
	recheck bool
}

// New makes a hub reading from store. Call Run to start its reader.
func New(store Store, encode Encoder, opts Options) *Hub {
	if opts.QueueLen <= 0 {
		opts.QueueLen = 64
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.Discard()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Hub{
		store:   store,
		encode:  encode,
		opts:    opts,
		m:       opts.Metrics,
		log:     opts.Logger,
		users:   make(map[string]*user),
		dirty:   make(map[string]struct{}),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	store.SetNotifier(h)
	return h
}

// Changed marks user to be read. It never blocks: the store calls it from
// its own goroutine.
func (h *Hub) Changed(name string) {
	h.mu.Lock()
	if u := h.users[name]; u != nil && u.state == ready {
		h.dirty[name] = struct{}{}
	}
	h.mu.Unlock()
	h.poke()
}

// Recheck marks user to be read again from its cursor, with a gap check.
func (h *Hub) Recheck(name string) {
	h.mu.Lock()
	if u := h.users[name]; u != nil && u.state == ready {
		h.dirty[name] = struct{}{}
		u.recheck = true
	}
	h.mu.Unlock()
	h.poke()
}

// Resync marks every followed user to be read again from its cursor.
func (h *Hub) Resync() {
	h.mu.Lock()
	h.resync = true
	h.mu.Unlock()
	h.poke()
}

func (h *Hub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Followed returns how many users the hub follows now.
func (h *Hub) Followed() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.users)
}

// Subscribe opens a stream for user. The stream receives every entry above
// its Start, through its Frames channel, until Unsubscribe.
func (h *Hub) Subscribe(name string) (*Conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if h.opts.MaxConns > 0 && h.conns >= h.opts.MaxConns {
		return nil, ErrFull
	}
	u := h.users[name]
	if u != nil && h.opts.MaxConnsPerUser > 0 && len(u.conns) >= h.opts.MaxConnsPerUser {
		return nil, ErrUserLimit
	}
	if u == nil {
		u = &user{name: name, state: following, ready: make(chan struct{})}
		h.users[name] = u
		h.m.FollowedUsers.Inc()
		go h.follow(u)
	}
	if u.state == leaving && !u.rejoined {
		u.ready = make(chan struct{})
		u.rejoined = true
	}
	c := &Conn{
		hub:    h,
		user:   u,
		ready:  u.ready,
		frames: make(chan *Frame, h.opts.QueueLen),
		kicked: make(chan struct{}),
	}
	if u.state == ready {
		c.start = u.cursor
	}
	c.index = len(u.conns)
	u.conns = append(u.conns, c)
	h.conns++
	h.m.StreamsOpen.Inc()
	if h.opts.Presence != nil {
		h.opts.Presence.Counted(name, len(u.conns))
	}
	return c, nil
}

// Unsubscribe closes c's stream; the last stream of a user stops the hub
// following that user.
func (h *Hub) Unsubscribe(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := c.user
	if c.index < 0 {
		return
	}
	last := len(u.conns) - 1
	u.conns[c.index] = u.conns[last]
	u.conns[c.index].index = c.index
	u.conns[last] = nil
	u.conns = u.conns[:last]
	c.index = -1
	h.conns--
	h.m.StreamsOpen.Dec()
	if h.opts.Presence != nil {
		h.opts.Presence.Counted(u.name, len(u.conns))
	}
	if len(u.conns) == 0 && u.state == ready {
		u.state = leaving
		go h.unfollow(u)
	}
}

// follow starts following u, retrying while the store does not answer:
// streams opened during an outage wait for it rather than fail.
func (h *Hub) follow(u *user) {
	backoff := retry.New(storeRetryFirst, storeRetryMax)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		id, err := h.store.Follow(ctx, u.name)
		cancel()
		if err == nil {
			h.mu.Lock()
			u.state = ready
			u.cursor = id
			for _, c := range u.conns {
				c.start = id
			}
			close(u.ready)
			// Entries notified while Follow was under way were dropped by
			// Changed; one read catches them.
			h.dirty[u.name] = struct{}{}
			if len(u.conns) == 0 {
				u.state = leaving
				go h.unfollow(u)
			}
			h.mu.Unlock()
			h.poke()
			return
		}
		h.m.BackendErrors.WithLabelValues("follow").Inc()
		wait := backoff.Next()
		h.log.Warn("following a user failed; retrying", "err", err, "retry_in", wait)
		if !retry.Sleep(wait, h.stop) {
			return
		}
		h.mu.Lock()
		if len(u.conns) == 0 {
			// Every stream left before the store answered: nothing to follow.
			delete(h.users, u.name)
			h.m.FollowedUsers.Dec()
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
}

// unfollow stops following u, then follows again if a stream of u opened
// meanwhile.
func (h *Hub) unfollow(u *user) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := h.store.Unfollow(ctx, u.name)
	cancel()
	if err != nil {
		// The store drops every subscription when its connection goes, so
		// a failed Unfollow leaves at most notifications the hub ignores.
		h.m.BackendErrors.WithLabelValues("unfollow").Inc()
		h.log.Warn("unfollowing a user failed", "err", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(u.conns) > 0 {
		u.state = following
		u.rejoined = false
		go h.follow(u)
		return
	}
	delete(h.users, u.name)
	delete(h.dirty, u.name)
	h.m.FollowedUsers.Dec()
}

// Close stops the reader and refuses new streams. Open streams are closed
// by their handlers (see Closing).
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.mu.Unlock()
	close(h.stop)
	<-h.stopped
}

// Closing is closed when the hub begins shutting down.
func (h *Hub) Closing() <-chan struct{} { return h.stop }
