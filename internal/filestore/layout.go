package filestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/noticed/noticed/internal/notice"
)

// The file holds three top-level buckets:
//
//	meta:    "version" -> formatVersion; "last" -> the newest id ever given
//	users:   user -> userMeta (expiry and entry count)
//	entries: user -> a bucket of id key -> encoded entry
//
// Keys of ids are big-endian, so bbolt's byte order is id order and a
// cursor's Seek finds the first entry after a client's Last-Event-ID.
var (
	bucketMeta    = []byte("meta")
	bucketUsers   = []byte("users")
	bucketEntries = []byte("entries")
	keyVersion    = []byte("version")
	keyLast       = []byte("last")
)

// formatVersion changes when a file written by this version could be
// misread by another; Open refuses a file of any other version.
const formatVersion = 1

// ErrCorrupt is returned for bytes in the file that no version of noticed
// wrote.
var ErrCorrupt = errors.New("data file corrupt")

const idKeyLen = 16

func idKey(id notice.ID) []byte {
	k := make([]byte, idKeyLen)
	binary.BigEndian.PutUint64(k, id.Ms)
	binary.BigEndian.PutUint64(k[8:], id.Seq)
	return k
}

func parseIDKey(k []byte) (notice.ID, error) {
	if len(k) != idKeyLen {
		return notice.Zero, fmt.Errorf("%w: an id key of %d bytes", ErrCorrupt, len(k))
	}
	return notice.ID{Ms: binary.BigEndian.Uint64(k), Seq: binary.BigEndian.Uint64(k[8:])}, nil
}

// encodeEntry writes an entry as the length of its event type (uvarint),
// the event type, then the data to the end.
func encodeEntry(event, data string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(event)+len(data))
	b = binary.AppendUvarint(b, uint64(len(event)))
	b = append(b, event...)
	return append(b, data...)
}

// decodeEntry reads what encodeEntry wrote; the strings are copies, since
// bbolt's bytes live only as long as the transaction.
func decodeEntry(id notice.ID, v []byte) (notice.Entry, error) {
	n, size := binary.Uvarint(v)
	if size <= 0 || n > uint64(len(v)-size) {
		return notice.Entry{}, fmt.Errorf("%w: entry %s", ErrCorrupt, id)
	}
	rest := v[size:]
	return notice.Entry{ID: id, Event: string(rest[:n]), Data: string(rest[n:])}, nil
}

// userMeta is what the file keeps about a user's stream besides its
// entries: when it expires (zero: never) and how many entries it holds,
// so that trimming does not count them.
type userMeta struct {
	expires time.Time
	count   uint64
}

const userMetaLen = 16

func (m userMeta) encode() []byte {
	b := make([]byte, userMetaLen)
	if !m.expires.IsZero() {
		binary.BigEndian.PutUint64(b, uint64(m.expires.UnixMilli()))
	}
	binary.BigEndian.PutUint64(b[8:], m.count)
	return b
}

func parseUserMeta(b []byte) (userMeta, error) {
	if len(b) != userMetaLen {
		return userMeta{}, fmt.Errorf("%w: a user record of %d bytes", ErrCorrupt, len(b))
	}
	var m userMeta
	if ms := binary.BigEndian.Uint64(b); ms != 0 {
		m.expires = time.UnixMilli(int64(ms))
	}
	m.count = binary.BigEndian.Uint64(b[8:])
	return m, nil
}

// expired says whether a stream expiring at m.expires is gone at now, as
// a Redis key whose time to live ran out.
func (m userMeta) expired(now time.Time) bool {
	return !m.expires.IsZero() && !now.Before(m.expires)
}
