package filestore

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

var _ routing.Backlog = (*Store)(nil)

// ReadBack returns up to count entries below before, newest first, from
// one read transaction.
func (s *Store) ReadBack(ctx context.Context, user string, before notice.ID, count int) ([]notice.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []notice.Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := s.liveBucket(tx, user)
		if err != nil || b == nil {
			return err
		}
		c := b.Cursor()
		k, v := c.Seek(idKey(before))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && (count <= 0 || len(out) < count); k, v = c.Prev() {
			id, err := parseIDKey(k)
			if err != nil {
				return err
			}
			if !id.Less(before) {
				continue
			}
			e, err := decodeEntry(id, v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(err)
	}
	return out, nil
}

// AppendIfNewest appends m while the newest retained entry is newest. The
// writer decides, in the transaction that would add m, so nothing can
// come between the check and the append.
func (s *Store) AppendIfNewest(ctx context.Context, m routing.Message, newest notice.ID) (notice.ID, error) {
	if err := ctx.Err(); err != nil {
		return notice.Zero, err
	}
	if m.User == "" {
		return notice.Zero, errNoUser
	}
	msgs := []routing.Message{m}
	r := &appendReq{msgs: msgs, ids: make([]notice.ID, 1), done: make(chan error, 1), ifNewest: &newest}
	if err := s.submit(ctx, r); err != nil {
		return notice.Zero, err
	}
	if r.conflict {
		return notice.Zero, routing.ErrNotNewest
	}
	s.follows.Appended(msgs)
	return r.ids[0], nil
}

// newestIn returns the id of user's newest retained entry in a write
// transaction (zero: none, or the stream expired).
func newestIn(users, entries *bolt.Bucket, user string, now time.Time) (notice.ID, error) {
	v := users.Get([]byte(user))
	if v == nil {
		return notice.Zero, nil
	}
	meta, err := parseUserMeta(v)
	if err != nil || meta.expired(now) {
		return notice.Zero, err
	}
	b := entries.Bucket([]byte(user))
	if b == nil {
		return notice.Zero, nil
	}
	k, _ := b.Cursor().Last()
	if k == nil {
		return notice.Zero, nil
	}
	return parseIDKey(k)
}
