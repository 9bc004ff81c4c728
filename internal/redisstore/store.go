// Package redisstore is the Redis Streams backend: one stream per user,
// appended with XADD, read with XRANGE from the last id a client has, and
// followed through keyspace notifications on one shared Pub/Sub connection,
// so that following many users costs Redis nothing per event beyond the
// one channel that event is published on.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// Defaults, as the -stream-* flags document them.
const (
	DefaultPrefix = "notice:"
	DefaultMaxLen = 1000
	DefaultTTL    = 24 * time.Hour
)

// defaultHealthEvery is how long the Pub/Sub connection may stay silent
// before it is pinged; as long again without an answer and it is replaced.
const defaultHealthEvery = 5 * time.Second

// Options configure a Store.
type Options struct {
	// URL is redis://[user:password@]host:port/db or rediss://… for TLS.
	URL string
	// Prefix starts every stream key: Prefix + "{" + user + "}".
	// Empty means DefaultPrefix.
	Prefix string
	// MaxLen bounds each stream (XADD MAXLEN ~). Zero means DefaultMaxLen;
	// negative keeps every entry.
	MaxLen int64
	// TTL is how long a stream lives after its last append. Zero means
	// DefaultTTL; negative never expires.
	TTL time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// healthEvery overrides defaultHealthEvery in tests.
	healthEvery time.Duration
}

// Store is the Redis backend of routing.Store.
type Store struct {
	rdb    *redis.Client
	ps     *redis.PubSub
	log    *slog.Logger
	prefix string
	maxLen int64
	ttl    time.Duration
	// chanPrefix is what a followed stream's keyspace channel starts
	// with: "__keyspace@<db>__:" + prefix + "{".
	chanPrefix  string
	healthEvery time.Duration

	// Follow and Unfollow requests on their way to the batcher, and
	// Follows to send again because their connection was replaced.
	incoming atomic.Pointer[request]
	retried  atomic.Pointer[request]
	wake     chan struct{}
	// followed holds, for each followed user, the mark of the Follow that
	// made it so: a Follow that gives up undoes only its own.
	followed sync.Map
	gen      atomic.Uint64

	appends appender

	mu       sync.Mutex
	notifier routing.Notifier
	pending  map[string]*pendingOp // by channel: the oldest unconfirmed
	lost     bool                  // the Pub/Sub connection failed since it last delivered
	losses   int                   // how often it did, for tests

	closing    chan struct{}
	closeOnce  sync.Once
	closeErr   error
	readerEnd  chan struct{}
	batcherEnd chan struct{}
}

var _ routing.Store = (*Store)(nil)

// ErrNotifyConfig means Redis lacks the keyspace notifications noticed
// needs and would not let noticed turn them on.
var ErrNotifyConfig = errors.New("redis keyspace notifications are not enabled")

// New connects to Redis, turns on the keyspace notifications it needs
// (adding to those already set) and starts the Pub/Sub reader. A Redis that
// cannot be reached gives an error wrapping routing.ErrUnavailable; one
// that refuses CONFIG gives ErrNotifyConfig, naming the configuration line
// to add.
func New(ctx context.Context, o Options) (*Store, error) {
	opt, err := redis.ParseURL(o.URL)
	if err != nil {
		// The URL may hold a password: the parse error does not repeat it.
		return nil, fmt.Errorf("redisstore: bad Redis URL: %w", err)
	}
	// Deadlines of callers' contexts bound their Redis calls, so Ping and
	// /readyz answer in time when Redis hangs.
	opt.ContextTimeoutEnabled = true
	// A retried XADD whose reply was lost would append twice; callers retry
	// on ErrUnavailable themselves. A URL may still set max_retries.
	if opt.MaxRetries == 0 {
		opt.MaxRetries = -1
	}
	// RESP2 unless the URL asks (protocol=3): under RESP3 go-redis peeks
	// every connection for push messages before each command, a read system
	// call per round trip (docs/benchmarks.md). Nothing here uses RESP3.
	if !strings.Contains(o.URL, "protocol=") {
		opt.Protocol = 2
	}
	// Maintenance hand-offs (Redis Enterprise) could swap the Pub/Sub
	// connection without an error the reader sees, which would skip Resync.
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	s := &Store{
		rdb:         redis.NewClient(opt),
		log:         o.Logger,
		prefix:      o.Prefix,
		maxLen:      o.MaxLen,
		ttl:         o.TTL,
		healthEvery: o.healthEvery,
		wake:        make(chan struct{}, 1),
		pending:     make(map[string]*pendingOp),
		closing:     make(chan struct{}),
		readerEnd:   make(chan struct{}),
		batcherEnd:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.maxLen == 0 {
		s.maxLen = DefaultMaxLen
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.healthEvery <= 0 {
		s.healthEvery = defaultHealthEvery
	}
	s.chanPrefix = fmt.Sprintf("__keyspace@%d__:%s{", opt.DB, s.prefix)

	if err := s.ensureNotifyFlags(ctx); err != nil {
		_ = s.rdb.Close()
		return nil, err
	}
	s.ps = s.rdb.Subscribe(context.Background()) // no channel yet: no connection either
	go s.readPubSub()
	go s.runBatcher()
	return s, nil
}

// key is the stream key of user; the braces make user the Cluster hash tag.
func (s *Store) key(user string) string { return s.prefix + "{" + user + "}" }

// Ping reports whether Redis answers now.
func (s *Store) Ping(ctx context.Context) error {
	return s.fail("ping", s.rdb.Ping(ctx).Err())
}

// Close stops the Pub/Sub reader and the batcher, and closes both
// connections' pools. A Follow or Unfollow still waiting returns.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		psErr := s.ps.Close()
		<-s.readerEnd
		<-s.batcherEnd
		s.closeErr = errors.Join(psErr, s.rdb.Close())
	})
	return s.closeErr
}

// errClosed answers a Follow or Unfollow that Close cut short.
var errClosed = errors.New("redisstore: store closed")

// untilClose returns a context that ends when Close is called.
func (s *Store) untilClose() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// fail turns a go-redis error into one a caller can act on: everything
// that means Redis cannot be reached or cannot serve right now wraps
// routing.ErrUnavailable; a caller's cancellation and Redis refusing the
// command itself (a wrong type, no permission) do not.
func (s *Store) fail(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || isRefusal(err) {
		return fmt.Errorf("redisstore: %s: %w", what, err)
	}
	return fmt.Errorf("redisstore: %s: %w: %w", what, routing.ErrUnavailable, err)
}

// isRefusal reports an error reply that retrying later would not fix.
func isRefusal(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	transient := redis.IsLoadingError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		redis.IsReadOnlyError(err) || redis.IsMaxClientsError(err) ||
		redis.HasErrorPrefix(err, "BUSY")
	return !transient
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// parseID reads an id Redis gave.
func parseID(v any) (notice.ID, error) {
	s, ok := v.(string)
	if !ok {
		return notice.Zero, fmt.Errorf("redisstore: entry id is %T, not a string", v)
	}
	id, err := notice.ParseID(s)
	if err != nil {
		return notice.Zero, fmt.Errorf("redisstore: entry id %q: %w", s, err)
	}
	return id, nil
}
