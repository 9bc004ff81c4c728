package filestore

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noticed/noticed/internal/embedded"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// maxBatch bounds the appends one transaction commits together.
const maxBatch = 256

// errNoUser refuses a message without a user: bbolt takes no empty key,
// and the server never sends one.
var errNoUser = errors.New("append: message without a user")

// appendReq is one Append waiting for the writer.
type appendReq struct {
	msgs []routing.Message
	ids  []notice.ID
	done chan error // buffered: the writer never waits for the caller
	// ifNewest, when set, makes the request conditional (AppendIfNewest):
	// its one message is added only while its user's newest retained
	// entry has this id; conflict says it was not.
	ifNewest *notice.ID
	conflict bool
}

// Append adds each message with an id like Redis would give it (see
// embedded.NextID), above every id this file ever gave. It returns once
// the entries are on disk (the transaction's fsync), so an answered
// publish survives a crash of the process or the machine.
func (s *Store) Append(ctx context.Context, msgs []routing.Message) ([]notice.ID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if m.User == "" {
			return nil, errNoUser
		}
	}
	r := &appendReq{msgs: msgs, ids: make([]notice.ID, len(msgs)), done: make(chan error, 1)}
	if err := s.submit(ctx, r); err != nil {
		return nil, err
	}
	s.follows.Appended(msgs)
	return r.ids, nil
}

// submit hands r to the writer and waits for its answer.
func (s *Store) submit(ctx context.Context, r *appendReq) error {
	select {
	case s.appends <- r:
	case <-s.stop:
		return s.fail(bolt.ErrDatabaseNotOpen)
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	select {
	case err = <-r.done:
	case <-s.writerDone:
		// The writer stopped; it may have answered just before.
		select {
		case err = <-r.done:
		default:
			err = bolt.ErrDatabaseNotOpen
		}
	case <-ctx.Done():
		// Like a Redis command that timed out, the entries may still be
		// written.
		return ctx.Err()
	}
	return s.fail(err)
}

// write commits appends until Close. Whatever queued while one
// transaction was being written goes into the next, so concurrent
// publishers share one fsync (a group commit) and a lone one waits for
// nobody.
func (s *Store) write() {
	defer close(s.writerDone)
	for {
		var batch []*appendReq
		select {
		case <-s.stop:
			return
		case r := <-s.appends:
			batch = append(batch, r)
		}
	more:
		for n := len(batch[0].msgs); n < maxBatch; {
			select {
			case r := <-s.appends:
				batch = append(batch, r)
				n += len(r.msgs)
			default:
				break more
			}
		}
		err := s.commit(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// commit writes batch in one transaction. s.last moves only when it
// commits, so a failed one gives its ids again.
func (s *Store) commit(batch []*appendReq) error {
	last := s.last
	err := s.db.Update(func(tx *bolt.Tx) error {
		last = s.last
		now := s.opts.Now()
		users, entries := tx.Bucket(bucketUsers), tx.Bucket(bucketEntries)
		for _, r := range batch {
			if r.ifNewest != nil {
				cur, err := newestIn(users, entries, r.msgs[0].User, now)
				if err != nil {
					return err
				}
				// Set on every try: a transaction that failed and is
				// written again must decide afresh.
				if r.conflict = cur != *r.ifNewest; r.conflict {
					continue
				}
			}
			for i, m := range r.msgs {
				last = embedded.NextID(last, now)
				if err := s.put(users, entries, m, last, now); err != nil {
					return err
				}
				r.ids[i] = last
			}
		}
		return tx.Bucket(bucketMeta).Put(keyLast, idKey(last))
	})
	if err == nil {
		s.last = last
	}
	return err
}

// put adds one entry to its user's stream, starting the stream again if
// it had expired, and applies retention.
func (s *Store) put(users, entries *bolt.Bucket, m routing.Message, id notice.ID, now time.Time) error {
	user := []byte(m.User)
	var meta userMeta
	if v := users.Get(user); v != nil {
		var err error
		if meta, err = parseUserMeta(v); err != nil {
			return err
		}
		if meta.expired(now) {
			if err := entries.DeleteBucket(user); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
			meta = userMeta{}
		}
	}
	b, err := entries.CreateBucketIfNotExists(user)
	if err != nil {
		return err
	}
	// Keys only ever grow: full pages split less and waste less.
	b.FillPercent = 0.95
	if err := b.Put(idKey(id), encodeEntry(m.Event, m.Data)); err != nil {
		return err
	}
	meta.count++
	if s.opts.MaxLen > 0 {
		c := b.Cursor()
		for ; meta.count > uint64(s.opts.MaxLen); meta.count-- {
			if k, _ := c.First(); k == nil {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
	}
	if s.opts.TTL > 0 {
		meta.expires = now.Add(s.opts.TTL)
	}
	return users.Put(user, meta.encode())
}
