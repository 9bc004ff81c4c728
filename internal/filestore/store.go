// Package filestore is the embedded backend kept in a file (-data): users'
// streams in a bbolt database, so that a single instance keeps its history
// across restarts and crashes, and a browser that reconnects after one
// replays what it missed. Ids, retention and gaps follow the memory and
// Redis backends; ids never go back across a restart, even when the clock
// does.
package filestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noticed/noticed/internal/embedded"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// Options name the file and set retention, as -stream-maxlen and
// -stream-ttl do for Redis.
type Options struct {
	Path   string
	MaxLen int           // entries kept per user; 0 keeps all
	TTL    time.Duration // a stream is dropped this long after its last entry; 0 never
	// LockWait is how long Open waits for another process to let go of
	// the file. Defaults to a second.
	LockWait time.Duration
	// Now is the clock; tests may set it. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("the data file is in use by another process (another noticed?): only one instance may use a file")

// ErrClosed is returned by calls after Close.
var ErrClosed = errors.New("file store closed")

// Store keeps every user's stream in one bbolt file.
type Store struct {
	opts    Options
	db      *bolt.DB
	follows embedded.Follows

	// last is the newest id ever given, in the file and here; only the
	// writer goroutine touches it.
	last notice.ID

	appends    chan *appendReq
	stop       chan struct{}
	stopOnce   sync.Once
	writerDone chan struct{}
	sweeper    *embedded.Sweeper
}

var _ routing.Store = (*Store)(nil)

// Open opens or creates the file at opts.Path, refusing one another
// process holds (bbolt's lock on the file) or one of another format.
func Open(opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LockWait <= 0 {
		opts.LockWait = time.Second
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: opts.LockWait})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", opts.Path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Path, err)
	}
	s := &Store{
		opts:       opts,
		db:         db,
		appends:    make(chan *appendReq, maxBatch),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	if err := db.Update(s.prepare); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", opts.Path, err)
	}
	go s.write()
	s.sweeper = embedded.StartSweeper(opts.TTL, s.sweep)
	return s, nil
}

// prepare makes the buckets of a new file, checks the version of an old
// one and loads the newest id given.
func (s *Store) prepare(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketUsers); err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketEntries); err != nil {
		return err
	}
	switch v := meta.Get(keyVersion); {
	case v == nil:
		if err := meta.Put(keyVersion, binary.AppendUvarint(nil, formatVersion)); err != nil {
			return err
		}
	default:
		if got, n := binary.Uvarint(v); n <= 0 || got != formatVersion {
			return fmt.Errorf("%w: not a noticed data file of format %d", ErrCorrupt, formatVersion)
		}
	}
	if v := meta.Get(keyLast); v != nil {
		last, err := parseIDKey(v)
		if err != nil {
			return err
		}
		s.last = last
	}
	return nil
}

// SetNotifier names who hears of new entries of followed users.
func (s *Store) SetNotifier(n routing.Notifier) { s.follows.SetNotifier(n) }

// Followed returns how many users are followed, for tests and metrics.
func (s *Store) Followed() int { return s.follows.Followed() }

// Follow starts notifications for user and returns its newest entry id.
func (s *Store) Follow(ctx context.Context, user string) (notice.ID, error) {
	if err := ctx.Err(); err != nil {
		return notice.Zero, err
	}
	s.follows.Follow(user)
	newest := notice.Zero
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := s.liveBucket(tx, user)
		if b == nil || err != nil {
			return err
		}
		if k, _ := b.Cursor().Last(); k != nil {
			newest, err = parseIDKey(k)
		}
		return err
	})
	return newest, s.fail(err)
}

// Unfollow stops notifications for user.
func (s *Store) Unfollow(ctx context.Context, user string) error {
	s.follows.Unfollow(user)
	return nil
}

// Ping reports whether the file can still be read.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.fail(s.db.View(func(*bolt.Tx) error { return nil }))
}

// Close stops the writer after the append under way and the sweeper,
// then closes the file (waiting for reads under way).
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.writerDone
	s.sweeper.Stop()
	return s.db.Close()
}

// liveBucket returns user's entries, or nil when the stream does not
// exist or has expired (the writer or the sweeper removes it later).
func (s *Store) liveBucket(tx *bolt.Tx, user string) (*bolt.Bucket, error) {
	if user == "" {
		return nil, nil
	}
	v := tx.Bucket(bucketUsers).Get([]byte(user))
	if v == nil {
		return nil, nil
	}
	m, err := parseUserMeta(v)
	if err != nil || m.expired(s.opts.Now()) {
		return nil, err
	}
	return tx.Bucket(bucketEntries).Bucket([]byte(user)), nil
}

// fail says what the caller should make of an error of the file: a closed
// store is unavailable (the caller answers 503), as is a file that cannot
// be read or written; a corrupt file is not, since waiting will not mend it.
func (s *Store) fail(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrCorrupt):
		return err
	case errors.Is(err, bolt.ErrDatabaseNotOpen):
		return fmt.Errorf("%w: %w", routing.ErrUnavailable, ErrClosed)
	}
	return fmt.Errorf("%w: %s: %w", routing.ErrUnavailable, s.opts.Path, err)
}
