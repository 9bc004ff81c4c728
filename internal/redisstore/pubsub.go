package redisstore

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/retry"
)

// readPubSub is the one goroutine that receives from the Pub/Sub
// connection: notifications, confirmations, and the failures that tell it
// the connection was replaced.
func (n *node) readPubSub() {
	defer close(n.readerEnd)
	ctx, cancel := n.untilClose()
	defer cancel()
	pinged := false
	backoff := retry.New(10*time.Millisecond, time.Second)
	for {
		var msg any
		var err error
		if pinged {
			// With no timeout of its own, Receive counts the deadline
			// passing as a broken connection and replaces it: what an
			// unanswered PING calls for (a frozen server keeps its sockets
			// open, so nothing else would show it).
			rctx, rcancel := context.WithTimeout(ctx, n.s.healthEvery)
			msg, err = n.ps.Receive(rctx)
			rcancel()
		} else {
			// A timeout passed this way leaves the connection be. No
			// context deadline here: it would cost a timer per message on
			// the busiest path there is, and a reconnection's dial is
			// bounded by go-redis' own dial timeout.
			msg, err = n.ps.ReceiveTimeout(ctx, n.s.healthEvery)
		}
		select {
		case <-n.closing:
			return // the error, if any, is close's doing
		default:
		}
		if err != nil {
			if !pinged && isTimeout(err) {
				if perr := n.ps.Ping(ctx); perr != nil {
					n.markLost(perr)
				} else {
					pinged = true
				}
				continue
			}
			pinged = false
			n.markLost(err)
			if !backoff.Wait(ctx.Done()) {
				return
			}
			continue
		}
		pinged = false
		backoff.Reset()
		if n.takeLost() {
			n.recover(ctx)
		}
		n.dispatch(msg)
	}
}

// markLost notes that the Pub/Sub connection failed. Confirmations still
// awaited will not come from the connection that replaces it: their
// batches are sent again.
func (n *node) markLost(err error) {
	n.mu.Lock()
	first := !n.lost
	n.lost = true
	n.losses++
	n.retryPendingLocked()
	n.mu.Unlock()
	if first {
		n.s.log.Warn("redis Pub/Sub connection lost; reconnecting", "node", n.addr, "err", err)
		n.s.kick() // the node may be gone for good: look at the topology
	}
}

func (n *node) takeLost() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	lost := n.lost
	n.lost = false
	return lost
}

// recover runs on the first message of a new connection, before that
// message is handled. go-redis has already sent one SUBSCRIBE for every
// channel it knew of, and Redis ran it whole before answering, so every
// followed stream is subscribed again by now. What was published in
// between was lost: the notifier is told to read every followed user from
// its last delivered id. A restarted Redis has also forgotten the
// notification flags unless its configuration file has them.
//
// A batch sent between the failure and now may have gone to either
// connection; it is sent again rather than guessed about.
func (n *node) recover(ctx context.Context) {
	n.mu.Lock()
	n.retryPendingLocked()
	n.mu.Unlock()

	backoff := retry.New(10*time.Millisecond, time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := n.s.ensureNotifyFlags(cctx, n.client)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, ErrNotifyConfig) {
			n.s.log.Error("cannot turn Redis keyspace notifications on again; followed streams get no live events", "err", err)
			break
		}
		if !backoff.Wait(ctx.Done()) {
			return
		}
	}

	n.s.resyncNode(n)
	n.s.log.Info("redis Pub/Sub connection is back; followed streams are read again", "node", n.addr)
}

func (n *node) dispatch(msg any) {
	switch m := msg.(type) {
	case *redis.Subscription:
		n.confirm(m.Kind, m.Channel)
	case *redis.Message:
		if !addsEntries(m.Payload) {
			return
		}
		user, ok := n.s.userOf(m.Channel)
		if !ok {
			return
		}
		if !n.s.isFollowed(user) {
			return
		}
		n.s.changed(user)
	}
}

// addsEntries reports whether a keyspace event may have added entries to
// the key. Trimming, deleting and expiry do not: reading then would only
// cost Redis work. Most flags are the operator's; with noticed's own (K and
// t) only stream events arrive.
func addsEntries(event string) bool {
	switch event {
	case "xadd", "rename_to", "restore", "copy_to", "move_to":
		return true
	}
	return false
}
