package redisstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
)

// The batcher takes whatever Follow and Unfollow requests have queued
// whenever it is free (never waiting for more to come, so a lone Follow
// pays no delay), sends them as one UNSUBSCRIBE and one SUBSCRIBE, and
// hands the batch to a goroutine that awaits its confirmations and then
// reads every followed user's newest id in one pipelined round trip.

const (
	// maxBatch bounds the channels of one SUBSCRIBE or UNSUBSCRIBE: Redis
	// runs each whole before serving anyone else, and its confirmations
	// must fit the Pub/Sub client's output buffer.
	maxBatch = 1024
	// maxInFlight bounds the batches awaiting confirmations and newest ids
	// at once. While all are busy, requests queue up, and the next batch
	// is the larger for it.
	maxInFlight = 4
	// sendTimeout bounds one write of the batcher (a reconnection's dial
	// included) and one newest-id round trip.
	sendTimeout = 5 * time.Second
)

// batch is the Follows sent in one SUBSCRIBE.
type batch struct {
	follows []*request
	done    chan struct{} // closed when left reaches 0 or retry is set

	// Under n.mu.
	left  int  // confirmations still to come
	retry bool // the connection was replaced first: send again
}

// pendingOp is one channel of a SUBSCRIBE or UNSUBSCRIBE sent and not yet
// confirmed. Redis confirms each channel, in order, naming it; keeping the
// operations on a channel in send order tells which confirmation answers
// which.
type pendingOp struct {
	kind string     // "subscribe" or "unsubscribe", as Redis confirms it
	b    *batch     // nil when nobody waits
	next *pendingOp // the same channel's next operation, sent later
}

// errSuperseded answers a Follow that a later Follow or Unfollow of the
// same user overtook before it was sent. The hub never does that.
var errSuperseded = errors.New("redisstore: follow: a later Follow or Unfollow of the same user came first")

// runBatcher is the one goroutine that writes SUBSCRIBE and UNSUBSCRIBE,
// so that the order of writes is the order of requests.
func (n *node) runBatcher() {
	defer close(n.batcherEnd)
	ctx, cancel := n.untilClose()
	defer cancel()
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	slots := make(chan struct{}, maxInFlight)
	var queue []*request // taken from the stacks, not yet sent
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		for {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			// Follows sent again were sent before anything queued now.
			if again := takeAll(&n.retried, nil); len(again) > 0 {
				queue = append(again, queue...)
			}
			queue = takeAll(&n.incoming, queue)
			var follows, unfollows []*request
			follows, unfollows, queue = n.takeBatch(queue)
			if len(follows) == 0 && len(unfollows) == 0 {
				<-slots
				break
			}
			n.unsubscribe(ctx, unfollows)
			b := n.subscribe(ctx, follows)
			if b == nil {
				<-slots
				continue
			}
			inFlight.Go(func() {
				defer func() { <-slots }()
				n.finish(ctx, b)
			})
		}
	}
}

// takeBatch takes requests from the head of queue, up to maxBatch, and
// returns them with what is left. It stops before a second request for a
// user already taken: one batch sends its UNSUBSCRIBE and SUBSCRIBE in
// either order, so it must not hold both for one channel. Requests whose
// sending would undo a later call for the same user are answered at once
// instead: a Follow given up or no longer the user's latest, an Unfollow
// after which the user was followed again.
func (n *node) takeBatch(queue []*request) (follows, unfollows, rest []*request) {
	if len(queue) == 0 {
		return nil, nil, queue
	}
	taken := make(map[string]struct{}, min(len(queue), maxBatch))
	i := 0
	for ; i < len(queue) && len(taken) < maxBatch; i++ {
		r := queue[i]
		if r.follow {
			if r.state.Load() != waiting {
				continue // given up; its UNSUBSCRIBE is further on
			}
			if mark, _ := n.s.followed.Load(r.user); mark != r.mark {
				n.s.answer(r, notice.Zero, errSuperseded)
				continue
			}
		} else if !r.move && n.s.isFollowed(r.user) {
			n.s.answer(r, notice.Zero, nil)
			continue
		}
		if _, dup := taken[r.user]; dup {
			break
		}
		taken[r.user] = struct{}{}
		if r.follow {
			follows = append(follows, r)
		} else {
			unfollows = append(unfollows, r)
		}
	}
	left := copy(queue, queue[i:])
	clear(queue[left:])
	return follows, unfollows, queue[:left]
}

// unsubscribe sends one UNSUBSCRIBE for reqs and answers them. A failed
// write needs nothing more: go-redis forgot the channels before writing,
// and the connection it dropped took the subscriptions with it.
func (n *node) unsubscribe(ctx context.Context, reqs []*request) {
	if len(reqs) == 0 {
		return
	}
	if err := n.send(ctx, "unsubscribe", n.channels(reqs), nil); err != nil {
		n.s.log.Debug("redis unsubscribe failed; the connection is replaced", "users", len(reqs), "err", err)
	}
	for _, r := range reqs {
		n.s.answer(r, notice.Zero, nil)
	}
}

// subscribe sends one SUBSCRIBE for reqs and returns the batch awaiting
// its confirmations, or nil when the write failed and reqs are answered.
func (n *node) subscribe(ctx context.Context, reqs []*request) *batch {
	if len(reqs) == 0 {
		return nil
	}
	b := &batch{follows: reqs, done: make(chan struct{})}
	if err := n.send(ctx, "subscribe", n.channels(reqs), b); err != nil {
		err = n.s.fail("follow", err)
		for _, r := range reqs {
			n.s.answer(r, notice.Zero, err)
		}
		return nil
	}
	return b
}

func (n *node) channels(reqs []*request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = n.s.channel(r.user)
	}
	return out
}

// send writes SUBSCRIBE or UNSUBSCRIBE for channels, each recorded as
// pending first so that no confirmation can come before it is expected.
func (n *node) send(ctx context.Context, kind string, channels []string, b *batch) error {
	ops := make([]pendingOp, len(channels))
	n.mu.Lock()
	for i, ch := range channels {
		ops[i] = pendingOp{kind: kind, b: b}
		n.pushPendingLocked(ch, &ops[i])
	}
	if b != nil {
		b.left = len(channels)
	}
	n.mu.Unlock()

	// The context bounds a dial, when go-redis must reconnect first. A
	// deadline passing in the middle of the write itself would make it
	// drop the connection every follower shares, but a write only waits
	// when Redis has stopped reading, and then it should be dropped.
	wctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	var err error
	if kind == "subscribe" {
		err = n.ps.Subscribe(wctx, channels...)
	} else {
		err = n.ps.Unsubscribe(wctx, channels...)
	}
	if err != nil {
		n.mu.Lock()
		for i, ch := range channels {
			n.dropPendingLocked(ch, &ops[i])
		}
		n.mu.Unlock()
		select {
		case <-n.closing: // Close closed the connection: nothing was lost
		default:
			// go-redis dropped the connection on this error, and with it
			// whatever the reader had not yet received.
			n.markLost(err)
		}
	}
	return err
}

// finish waits for b's confirmations, then answers each Follow still
// waiting with its user's newest id.
func (n *node) finish(ctx context.Context, b *batch) {
	select {
	case <-b.done:
	case <-ctx.Done():
		// Closing: a Follow still waiting hears that its node is gone.
		for _, r := range b.follows {
			n.s.answer(r, notice.Zero, errNodeGone)
		}
		return
	}
	n.mu.Lock()
	retry := b.retry
	n.mu.Unlock()
	live := make([]*request, 0, len(b.follows))
	for _, r := range b.follows {
		if r.state.Load() != waiting {
			continue
		}
		if r.move && !retry {
			n.s.answer(r, notice.Zero, nil)
			// Read it from its cursor, with a gap check: what was written
			// while it moved is delivered, and what a failover lost is
			// found (see markLost).
			n.s.recheck(r.user)
			continue
		}
		live = append(live, r)
	}
	if retry {
		for _, r := range live {
			n.push(&n.retried, r)
		}
		return
	}
	if len(live) == 0 {
		return
	}
	ids, errs := n.newestIDs(ctx, live)
	for i, r := range live {
		n.s.answer(r, ids[i], errs[i])
	}
}

// newestIDs reads the newest id of each user of reqs in one pipelined
// round trip, with an error per user.
func (n *node) newestIDs(ctx context.Context, reqs []*request) ([]notice.ID, []error) {
	rctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	pipe := n.s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(reqs))
	for i, r := range reqs {
		cmds[i] = pipe.Do(rctx, "XREVRANGE", n.s.key(r.user), "+", "-", "COUNT", 1)
	}
	// Each command's own error is looked at: one user's key of another
	// type must not fail the rest.
	_, _ = pipe.Exec(rctx)
	ids := make([]notice.ID, len(reqs))
	errs := make([]error, len(reqs))
	for i, c := range cmds {
		v, err := c.Result()
		if err != nil {
			errs[i] = n.s.fail("newest entry", err)
			continue
		}
		ids[i], errs[i] = newestID(v)
	}
	return ids, errs
}

// pushPendingLocked appends op to channel's pending operations. Callers
// hold n.mu.
func (n *node) pushPendingLocked(channel string, op *pendingOp) {
	last := n.pending[channel]
	if last == nil {
		n.pending[channel] = op
		return
	}
	for last.next != nil {
		last = last.next
	}
	last.next = op
}

// dropPendingLocked removes op, whose write failed, from channel's
// pending operations. Callers hold n.mu.
func (n *node) dropPendingLocked(channel string, op *pendingOp) {
	head := n.pending[channel]
	if head == op {
		if op.next == nil {
			delete(n.pending, channel)
		} else {
			n.pending[channel] = op.next
		}
		return
	}
	for p := head; p != nil; p = p.next {
		if p.next == op {
			p.next = op.next
			return
		}
	}
}

// confirm matches a confirmation with the oldest pending operation on its
// channel. One that matches none (go-redis resubscribing after a
// reconnection, or an operation already given up on) is ignored.
func (n *node) confirm(kind, channel string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	head := n.pending[channel]
	if head == nil || head.kind != kind {
		return
	}
	if head.next == nil {
		delete(n.pending, channel)
	} else {
		n.pending[channel] = head.next
	}
	if b := head.b; b != nil && !b.retry {
		b.left--
		if b.left == 0 {
			close(b.done)
		}
	}
}

// retryPendingLocked gives up on every confirmation still awaited: each
// batch waiting for one is sent again. Callers hold n.mu.
func (n *node) retryPendingLocked() {
	for _, op := range n.pending {
		for ; op != nil; op = op.next {
			if b := op.b; b != nil && !b.retry {
				b.retry = true
				close(b.done)
			}
		}
	}
	clear(n.pending)
}
