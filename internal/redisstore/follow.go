package redisstore

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

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

// op is a SUBSCRIBE or UNSUBSCRIBE sent and not yet confirmed. Redis
// confirms each, in order, naming the channel; keeping them in send order
// per channel tells which confirmation answers which.
type op struct {
	kind string        // "subscribe" or "unsubscribe", as Redis confirms it
	done chan struct{} // closed on confirmation; nil when nobody waits
	// retry is set before done is closed when the connection was replaced
	// before the confirmation came: the sender must subscribe again.
	retry bool
}

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

// Follow subscribes to user's keyspace channel, waits until Redis confirms
// it, and only then reads the newest id: an entry added after that read is
// published to a channel already subscribed, so it is notified.
//
// The hub follows a user once, and does not unfollow while a Follow of the
// same user is under way; a failed Follow leaves the user unfollowed.
func (s *Store) Follow(ctx context.Context, user string) (notice.ID, error) {
	s.mu.Lock()
	s.followed[user] = struct{}{}
	s.mu.Unlock()
	if err := s.subscribe(ctx, s.channel(user)); err != nil {
		s.forget(user)
		return notice.Zero, err
	}
	id, err := s.newest(ctx, s.key(user))
	if err != nil {
		s.forget(user)
		return notice.Zero, err
	}
	return id, nil
}

// Unfollow stops notifications for user at once (anything still in flight
// for it is dropped) and unsubscribes. Should the UNSUBSCRIBE not reach
// Redis, the connection it was meant for is gone, and the subscription
// with it; go-redis does not restore it.
func (s *Store) Unfollow(ctx context.Context, user string) error {
	s.forget(user)
	return nil
}

func (s *Store) forget(user string) {
	s.mu.Lock()
	delete(s.followed, user)
	s.mu.Unlock()
	// Not the caller's context: it may be what made Follow fail, and
	// UNSUBSCRIBE must still be sent.
	if _, err := s.send(context.Background(), "unsubscribe", s.channel(user), false); err != nil {
		s.log.Debug("redis unsubscribe failed; the connection is replaced", "user", user, "err", err)
	}
}

// subscribe sends SUBSCRIBE and waits for its confirmation, sending again
// if the connection was replaced first.
func (s *Store) subscribe(ctx context.Context, channel string) error {
	for {
		if err := ctx.Err(); err != nil {
			return s.fail("follow", err)
		}
		o, err := s.send(ctx, "subscribe", channel, true)
		if err != nil {
			return s.fail("follow", err)
		}
		select {
		case <-o.done:
			if !o.retry {
				return nil
			}
		case <-ctx.Done():
			return s.fail("follow: waiting for Redis to confirm SUBSCRIBE", ctx.Err())
		case <-s.closing:
			return errors.New("redisstore: follow: store closed")
		}
	}
}

// send writes SUBSCRIBE or UNSUBSCRIBE for one channel and records it as
// pending, both under sendMu so that pending keeps the order of writes.
func (s *Store) send(ctx context.Context, kind, channel string, wait bool) (*op, error) {
	o := &op{kind: kind}
	if wait {
		o.done = make(chan struct{})
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	s.pending[channel] = append(s.pending[channel], o)
	s.mu.Unlock()

	// The context bounds a dial, when go-redis must reconnect first. A
	// deadline passing in the middle of the write itself would make it
	// drop the connection every follower shares, but a write only waits
	// when Redis has stopped reading, and then it should be dropped.
	var err error
	if kind == "subscribe" {
		err = s.ps.Subscribe(ctx, channel)
	} else {
		err = s.ps.Unsubscribe(ctx, channel)
	}
	if err != nil {
		s.mu.Lock()
		q := s.pending[channel]
		for i := range q {
			if q[i] == o {
				q = append(q[:i], q[i+1:]...)
				break
			}
		}
		s.setPending(channel, q)
		s.mu.Unlock()
		// go-redis dropped the connection on this error, and with it
		// whatever the reader had not yet received.
		s.markLost(err)
		return nil, err
	}
	return o, nil
}

// setPending stores q as channel's pending operations. Callers hold s.mu.
func (s *Store) setPending(channel string, q []*op) {
	if len(q) == 0 {
		delete(s.pending, channel)
	} else {
		s.pending[channel] = q
	}
}

// readPubSub is the one goroutine that receives from the Pub/Sub
// connection: notifications, confirmations, and the failures that tell it
// the connection was replaced.
func (s *Store) readPubSub() {
	defer close(s.readerEnd)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	pinged := false
	var pause time.Duration
	for {
		// The context bounds a reconnection's dial (go-redis holds the
		// PubSub's lock meanwhile, holding up Follow).
		rctx, rcancel := context.WithTimeout(ctx, s.healthEvery)
		var msg any
		var err error
		if pinged {
			// With no timeout of its own, Receive counts the deadline
			// passing as a broken connection and replaces it: what an
			// unanswered PING calls for (a frozen server keeps its sockets
			// open, so nothing else would show it).
			msg, err = s.ps.Receive(rctx)
		} else {
			// A timeout passed this way leaves the connection be.
			msg, err = s.ps.ReceiveTimeout(rctx, s.healthEvery)
		}
		rcancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !pinged && isTimeout(err) {
				if perr := s.ps.Ping(ctx); perr != nil {
					s.markLost(perr)
				} else {
					pinged = true
				}
				continue
			}
			pinged = false
			s.markLost(err)
			pause = min(max(2*pause, 10*time.Millisecond), time.Second)
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			continue
		}
		pinged, pause = false, 0
		if s.takeLost() {
			s.recover(ctx)
		}
		s.dispatch(msg)
	}
}

func (s *Store) markLost(err error) {
	s.mu.Lock()
	first := !s.lost
	s.lost = true
	s.losses++
	s.mu.Unlock()
	if first {
		s.log.Warn("redis Pub/Sub connection lost; reconnecting", "err", err)
	}
}

func (s *Store) takeLost() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	lost := s.lost
	s.lost = false
	return lost
}

// recover runs on the first message of a new connection, before that
// message is handled. go-redis has already sent one SUBSCRIBE for every
// channel it knew of, and Redis ran it whole before answering, so every
// followed stream is subscribed again by now. What was published in
// between was lost: the notifier is told to read every followed user from
// its last delivered id. A restarted Redis has also forgotten the
// notification flags unless its configuration file has them.
func (s *Store) recover(ctx context.Context) {
	s.mu.Lock()
	for _, q := range s.pending {
		for _, o := range q {
			if o.done != nil {
				o.retry = true
				close(o.done)
			}
		}
	}
	clear(s.pending)
	s.mu.Unlock()

	for pause := 10 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.ensureNotifyFlags(cctx)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, ErrNotifyConfig) {
			s.log.Error("cannot turn Redis keyspace notifications on again; followed streams get no live events", "err", err)
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}

	s.mu.Lock()
	n := s.notifier
	s.mu.Unlock()
	if n != nil {
		n.Resync()
	}
	s.log.Info("redis Pub/Sub connection is back; followed streams are read again")
}

func (s *Store) dispatch(msg any) {
	switch m := msg.(type) {
	case *redis.Subscription:
		s.confirm(m.Kind, m.Channel)
	case *redis.Message:
		if !addsEntries(m.Payload) {
			return
		}
		user, ok := s.userOf(m.Channel)
		if !ok {
			return
		}
		s.mu.Lock()
		_, followed := s.followed[user]
		n := s.notifier
		s.mu.Unlock()
		if followed && n != nil {
			n.Changed(user)
		}
	}
}

// confirm matches a confirmation with the oldest pending operation on its
// channel. One that matches none (go-redis resubscribing after a
// reconnection, or an operation recover already gave up on) is ignored.
func (s *Store) confirm(kind, channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.pending[channel]
	if len(q) == 0 || q[0].kind != kind {
		return
	}
	if q[0].done != nil {
		close(q[0].done)
	}
	s.setPending(channel, q[1:])
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

// lossCount is how often the Pub/Sub connection failed, for tests.
func (s *Store) lossCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.losses
}
