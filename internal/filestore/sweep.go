package filestore

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// sweep removes the streams whose time to live ran out. It looks for them
// in a read transaction, so that appends wait only for the removal.
func (s *Store) sweep() {
	var expired [][]byte
	now := s.opts.Now()
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			if m, err := parseUserMeta(v); err == nil && m.expired(now) {
				expired = append(expired, append([]byte(nil), k...))
			}
			return nil
		})
	})
	if err != nil || len(expired) == 0 {
		return
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		users, entries := tx.Bucket(bucketUsers), tx.Bucket(bucketEntries)
		now := s.opts.Now()
		for _, user := range expired {
			// An append may have started the stream again meanwhile.
			m, err := parseUserMeta(users.Get(user))
			if err != nil || !m.expired(now) {
				continue
			}
			if err := users.Delete(user); err != nil {
				return err
			}
			if err := entries.DeleteBucket(user); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.opts.Logger.Warn("file store: expired streams not removed; retrying at the next sweep", "path", s.opts.Path, "err", err)
	}
}
