package routing

import (
	"context"
	"sync"

	"github.com/noticed/noticed/internal/notice"
)

// Conn is one open stream of a user on this instance.
type Conn struct {
	hub    *Hub
	user   *user
	index  int           // in user.conns; -1 once unsubscribed
	ready  chan struct{} // closed when start is known
	start  notice.ID     // entries above start arrive on frames
	frames chan *Frame
	wake   func(now bool) // called after frames are queued or the stream is kicked

	kickOnce sync.Once
	kicked   chan struct{}
}

// User returns the stream's user id.
func (c *Conn) User() string { return c.user.name }

// Start waits until the hub follows the user, then returns the id above
// which every entry will arrive on Frames. Entries up to it are the
// stream's to replay from the store.
func (c *Conn) Start(ctx context.Context) (notice.ID, error) {
	c.hub.mu.Lock()
	ready := c.ready
	c.hub.mu.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
		return notice.Zero, ctx.Err()
	case <-c.hub.stop:
		return notice.Zero, ErrClosed
	}
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	return c.start, nil
}

// Ready is closed once Start would return at once.
func (c *Conn) Ready() <-chan struct{} {
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	return c.ready
}

// Frames delivers the user's live entries, oldest first.
func (c *Conn) Frames() <-chan *Frame { return c.frames }

// Kicked is closed when the stream fell too far behind and must close.
func (c *Conn) Kicked() <-chan struct{} { return c.kicked }

// OnWake sets a function the hub calls each time it has queued frames on
// the stream or kicked it. It must not block or call the hub. When now is
// true the hub calls it outside its lock, from the goroutine that fanned
// the frames out (its reader's, or a publisher's in Hub.Append: two may
// call at once), and the function may write what is queued there and
// then, without blocking; when false, the hub has spent its time for that
// (see InlineBudget) or holds its lock, and the function should hand the
// work to a goroutine.
func (c *Conn) OnWake(f func(now bool)) {
	c.hub.mu.Lock()
	c.wake = f
	c.hub.mu.Unlock()
}

// Queued returns how many frames wait on Frames.
func (c *Conn) Queued() int { return len(c.frames) }

// push queues f, or closes the stream as slow when its queue is full.
func (c *Conn) push(f *Frame) bool {
	select {
	case c.frames <- f:
		return true
	default:
		c.close()
		return false
	}
}

func (c *Conn) closed() bool {
	select {
	case <-c.kicked:
		return true
	default:
		return false
	}
}

// close ends the stream, which fell too far behind.
func (c *Conn) close() {
	c.kickOnce.Do(func() {
		close(c.kicked)
		c.hub.m.SlowClosed.Inc()
		if c.wake != nil {
			c.wake(false)
		}
	})
}
