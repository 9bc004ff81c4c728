package filestore

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/noticed/noticed/internal/embedded"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// Read answers every cursor from one read transaction of the file, with
// embedded.Gap's rule for gaps.
func (s *Store) Read(ctx context.Context, cursors []routing.Cursor) ([]routing.Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]routing.Batch, len(cursors))
	err := s.db.View(func(tx *bolt.Tx) error {
		for i, c := range cursors {
			b, err := s.liveBucket(tx, c.User)
			if err != nil {
				return err
			}
			if out[i], err = readStream(b, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(err)
	}
	return out, nil
}

// readStream answers c from the user's bucket b (nil: no stream).
func readStream(b *bolt.Bucket, c routing.Cursor) (routing.Batch, error) {
	var out routing.Batch
	var cur *bolt.Cursor
	var first []byte
	if b != nil {
		cur = b.Cursor()
		first, _ = cur.First()
	}
	if first == nil {
		out.Gap, out.Ahead = embedded.Gap(c, notice.Zero, notice.Zero, false)
		return out, nil
	}
	oldest, err := parseIDKey(first)
	if err != nil {
		return out, err
	}
	last, _ := cur.Last()
	newest, err := parseIDKey(last)
	if err != nil {
		return out, err
	}
	out.Gap, out.Ahead = embedded.Gap(c, oldest, newest, true)
	after := idKey(c.After)
	k, v := cur.Seek(after)
	if k != nil && bytes.Equal(k, after) {
		k, v = cur.Next()
	}
	for ; k != nil && (c.Count <= 0 || len(out.Entries) < c.Count); k, v = cur.Next() {
		id, err := parseIDKey(k)
		if err != nil {
			return out, err
		}
		e, err := decodeEntry(id, v)
		if err != nil {
			return out, err
		}
		out.Entries = append(out.Entries, e)
	}
	return out, nil
}
