package redisstore

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// Following works through keyspace notifications: Redis publishes "xadd"
// on __keyspace@<db>__:<key> for every XADD, whoever sends it. The store
// holds one Pub/Sub connection, subscribes to the channel of each followed
// user's key on it, and one goroutine reads it. Redis finds a channel's
// subscribers with one lookup, so an event costs the same however many
// users are followed; one blocking XREAD over every followed key would
// cost in proportion to them.
//
// Follow and Unfollow do not talk to Redis themselves: they queue a
// request, and one batcher goroutine (batch.go) sends whatever has queued
// as one SUBSCRIBE and one UNSUBSCRIBE, so that thousands of streams
// opening at once cost a few round trips, not thousands. Nothing on their
// way takes a lock the others wait for: when thousands of streams open at
// once, thousands of Follows arrive together.
//
// s.followed says which users are followed now, and by which Follow; the
// batcher reads it as it takes each request, which settles calls for one
// user that race each other: a Follow that is no longer the user's latest
// is not sent, and an Unfollow is not sent once a later Follow has come.

// request is one Follow or Unfollow on its way to Redis.
type request struct {
	user   string
	follow bool
	// mark is the Follow's own value in s.followed, telling it apart from
	// other Follows of the same user.
	mark any
	// node is the node whose batcher sends it.
	node *node
	// move marks a request that moves a followed user from one node to
	// another: its UNSUBSCRIBE is sent although the user is followed, and
	// a failed SUBSCRIBE leaves the user followed, to be placed again.
	move bool
	done chan struct{} // closed once answered; nil when nobody waits
	next *request      // in a pending stack (see push)

	state atomic.Int32 // waiting, then answered or abandoned
	// Set before done is closed.
	id  notice.ID
	err error
}

// Request states.
const (
	waiting int32 = iota
	answered
	abandoned // the caller stopped waiting; nobody reads the answer
)

// SetNotifier names who is told of new entries and of reconnections.
func (s *Store) SetNotifier(n routing.Notifier) {
	s.mu.Lock()
	s.notifier = n
	s.mu.Unlock()
}

func (s *Store) channel(user string) string { return s.chanPrefix + user + "}" }

func (s *Store) userOf(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, s.chanPrefix)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}")
}

// follow is the value s.followed holds for a followed user: the mark of
// the Follow that made it so, and where its subscription lives.
type follow struct {
	node *node // under s.mu; nil while it waits to be placed again
}

// Follow subscribes to user's keyspace channel, waits until Redis confirms
// it, and only then reads the newest id: an entry added after that read is
// published to a channel already subscribed, so it is notified.
//
// A Follow that fails or gives up (its context ended) leaves the user
// unfollowed: an UNSUBSCRIBE is queued behind its SUBSCRIBE. The hub
// follows a user once, and does not unfollow while a Follow of the same
// user is under way; should anyone else, the later call wins.
func (s *Store) Follow(ctx context.Context, user string) (notice.ID, error) {
	if err := ctx.Err(); err != nil {
		return notice.Zero, s.fail("follow", err)
	}
	n, err := s.nodeFor(user)
	if err != nil {
		return notice.Zero, err
	}
	f := &follow{node: n}
	r := &request{user: user, follow: true, mark: f, node: n, done: make(chan struct{})}
	s.followed.Store(user, f)
	n.push(&n.incoming, r)

	var why error
	select {
	case <-r.done:
		return r.id, r.err
	case <-ctx.Done():
		why = s.fail("follow: waiting for Redis", ctx.Err())
	case <-s.closing:
		why = errClosed
	}
	if !r.state.CompareAndSwap(waiting, abandoned) {
		<-r.done // answered as the caller gave up: closed right after
		return r.id, r.err
	}
	s.forget(r)
	return notice.Zero, why
}

// Unfollow stops notifications for user at once (anything still in flight
// for it is dropped) and returns once the UNSUBSCRIBE is sent. Should it
// not reach Redis, the connection it was meant for is gone, and the
// subscription with it: go-redis does not restore it.
func (s *Store) Unfollow(ctx context.Context, user string) error {
	v, ok := s.followed.LoadAndDelete(user)
	if !ok {
		return nil
	}
	s.mu.Lock()
	n := v.(*follow).node
	s.mu.Unlock()
	if n == nil {
		return nil // between nodes: no subscription to end
	}
	r := &request{user: user, node: n, done: make(chan struct{})}
	n.push(&n.incoming, r)
	select {
	case <-r.done:
	case <-ctx.Done():
		// Still queued: it is sent all the same.
		return s.fail("unfollow: waiting to send UNSUBSCRIBE", ctx.Err())
	case <-s.closing:
	case <-n.closing:
	}
	return nil
}

// push adds r to stack, a list newest first that the batcher takes whole
// (see takeAll), and wakes the batcher.
func (n *node) push(stack *atomic.Pointer[request], r *request) {
	for {
		top := stack.Load()
		r.next = top
		if stack.CompareAndSwap(top, r) {
			break
		}
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// takeAll empties stack and appends its requests to dst, oldest first.
func takeAll(stack *atomic.Pointer[request], dst []*request) []*request {
	first := len(dst)
	for r := stack.Swap(nil); r != nil; r = r.next {
		dst = append(dst, r)
	}
	for i, j := first, len(dst)-1; i < j; i, j = i+1, j-1 {
		dst[i], dst[j] = dst[j], dst[i]
	}
	return dst
}

// forget undoes the Follow r, unless a later Follow or Unfollow of the
// same user has already taken over.
func (s *Store) forget(r *request) {
	if s.followed.CompareAndDelete(r.user, r.mark) {
		r.node.push(&r.node.incoming, &request{user: r.user, node: r.node})
	}
}

// answer gives r its answer, unless its caller has gone. A failed Follow
// is forgotten before its caller hears of it, so that a Follow it then
// retries is queued behind the UNSUBSCRIBE.
func (s *Store) answer(r *request, id notice.ID, err error) {
	if !r.state.CompareAndSwap(waiting, answered) {
		return
	}
	r.id, r.err = id, err
	switch {
	case err != nil && r.move:
		s.unplace(r)
	case err != nil && r.follow:
		s.forget(r)
	}
	if r.done != nil {
		close(r.done)
	}
}

// isFollowed reports whether user is followed now.
func (s *Store) isFollowed(user string) bool {
	_, ok := s.followed.Load(user)
	return ok
}
