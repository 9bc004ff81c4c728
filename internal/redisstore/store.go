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
	// Replicas is how many replicas must hold an appended entry before
	// Append returns (WAIT); fewer within ReplicasTimeout (default 1s)
	// fails the Append with ErrNotReplicated. Zero: the master's word.
	Replicas        int
	ReplicasTimeout time.Duration

	// healthEvery overrides defaultHealthEvery in tests.
	healthEvery time.Duration
}

// Store is the Redis backend of routing.Store.
type Store struct {
	rdb    redis.UniversalClient
	url    parsedURL
	log    *slog.Logger
	prefix string
	maxLen int64
	ttl    time.Duration
	// replicas and replicasWait are Options.Replicas and ReplicasTimeout.
	replicas     int
	replicasWait time.Duration
	// chanPrefix is what a followed stream's keyspace channel starts
	// with: "__keyspace@<db>__:" + prefix + "{".
	chanPrefix  string
	healthEvery time.Duration

	// followed holds, for each followed user, the *follow of the Follow
	// that made it so (a Follow that gives up undoes only its own), which
	// also says on which node its subscription lives.
	followed sync.Map

	appends   coalescer[*appendReq]
	readBacks coalescer[*readBackReq]

	mu       sync.Mutex
	notifier routing.Notifier
	// nodes are the masters by address, and former masters that still
	// hold subscriptions; see topology.go.
	nodes  map[string]*node
	master string   // single and Sentinel: the master's address
	slots  []string // Cluster: the master's address for each slot

	sentinels []*redis.SentinelClient
	watchers  []*redis.PubSub // +switch-master on each sentinel
	kickc     chan struct{}

	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	topoEnd   chan struct{}
}

var _ routing.Store = (*Store)(nil)

// ErrNotifyConfig means Redis lacks the keyspace notifications noticed
// needs and would not let noticed turn them on.
var ErrNotifyConfig = errors.New("redis keyspace notifications are not enabled")

// New connects to Redis, turns on the keyspace notifications it needs
// (adding to those already set) at every master, and starts the Pub/Sub
// readers. A Redis that cannot be reached gives an error wrapping
// routing.ErrUnavailable; one that refuses CONFIG gives ErrNotifyConfig,
// naming the configuration line to add; a malformed URL gives ErrBadURL,
// naming the part that is wrong.
func New(ctx context.Context, o Options) (*Store, error) {
	u, err := parseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	// RESP2 unless the URL asks (protocol=3): under RESP3 go-redis peeks
	// every connection for push messages before each command, a read system
	// call per round trip (docs/benchmarks.md). Nothing here uses RESP3.
	resp2 := !strings.Contains(o.URL, "protocol=")
	s := &Store{
		url:          u,
		log:          o.Logger,
		prefix:       o.Prefix,
		maxLen:       o.MaxLen,
		ttl:          o.TTL,
		healthEvery:  o.healthEvery,
		replicas:     o.Replicas,
		replicasWait: o.ReplicasTimeout,
		nodes:        make(map[string]*node),
		kickc:        make(chan struct{}, 1),
		closing:      make(chan struct{}),
		topoEnd:      make(chan struct{}),
	}
	s.appends = coalescer[*appendReq]{inFlight: maxAppendsInFlight, limit: maxAppendBatch,
		size: func(r *appendReq) int { return len(r.msgs) }, send: s.pipelineAppends}
	s.readBacks = coalescer[*readBackReq]{inFlight: maxReadBacksInFlight, limit: maxReadBackBatch,
		size: func(*readBackReq) int { return 1 }, send: s.pipelineReadBacks}
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
	if s.replicasWait <= 0 {
		s.replicasWait = time.Second
	}
	// Deadlines of callers' contexts bound their Redis calls, so Ping and
	// /readyz answer in time when Redis hangs. A retried XADD whose reply
	// was lost would append twice; callers retry on ErrUnavailable
	// themselves, and a URL may still set max_retries. Maintenance
	// hand-offs (Redis Enterprise) could swap the Pub/Sub connection
	// without an error the reader sees, which would skip the resync.
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	db := 0
	switch u.kind {
	case single:
		opt := u.single
		clientDefaults(&opt.ContextTimeoutEnabled, &opt.MaxRetries, &opt.Protocol, resp2)
		opt.MaintNotificationsConfig = noMaint
		db = opt.DB
		c := redis.NewClient(opt)
		s.rdb = c
		s.chanPrefix = fmt.Sprintf("__keyspace@%d__:%s{", db, s.prefix)
		if err := s.ensureNotifyFlags(ctx, c); err != nil {
			_ = c.Close()
			return nil, err
		}
		s.master = opt.Addr
		s.nodes[opt.Addr] = s.startNode(opt.Addr, c, false)
		close(s.topoEnd) // one node: no topology to watch
		return s, nil
	case sentinel:
		opt := u.failover
		clientDefaults(&opt.ContextTimeoutEnabled, &opt.MaxRetries, &opt.Protocol, resp2)
		db = opt.DB
		s.rdb = redis.NewFailoverClient(opt)
		for _, addr := range opt.SentinelAddrs {
			s.sentinels = append(s.sentinels, redis.NewSentinelClient(&redis.Options{
				Addr: addr, Username: opt.SentinelUsername, Password: opt.SentinelPassword,
				TLSConfig: opt.TLSConfig, DialTimeout: opt.DialTimeout, ReadTimeout: opt.ReadTimeout,
				WriteTimeout: opt.WriteTimeout, MaxRetries: -1, Protocol: 2, ContextTimeoutEnabled: true,
			}))
		}
	case cluster:
		opt := u.cluster
		clientDefaults(&opt.ContextTimeoutEnabled, &opt.MaxRetries, &opt.Protocol, resp2)
		opt.MaintNotificationsConfig = noMaint
		c := redis.NewClusterClient(opt)
		// A MOVED or ASK reply means a slot moved: its followed users must
		// follow it (topology.go).
		c.OnNewNode(func(n *redis.Client) { n.AddHook(movedHook{s}) })
		s.rdb = c
	}
	s.chanPrefix = fmt.Sprintf("__keyspace@%d__:%s{", db, s.prefix)
	if err := s.refresh(ctx); err != nil {
		s.closeAll()
		return nil, err
	}
	for _, sc := range s.sentinels {
		// Each sentinel announces a failover on +switch-master; the
		// periodic look at the topology catches one a dead sentinel missed.
		ps := sc.Subscribe(context.Background(), "+switch-master")
		s.watchers = append(s.watchers, ps)
		go func() {
			for range ps.Channel() {
				s.kick()
			}
		}()
	}
	go s.watchTopology()
	return s, nil
}

// key is the stream key of user; the braces make user the Cluster hash tag.
func (s *Store) key(user string) string { return s.prefix + "{" + user + "}" }

// Ping reports whether Redis answers now: the master (in a Cluster, every
// master) answers PING and every Pub/Sub connection is up. The error names
// each node that is not.
func (s *Store) Ping(ctx context.Context) error {
	var errs []error
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err := c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			if err := n.Ping(ctx).Err(); err != nil {
				mu.Lock()
				errs = append(errs, s.fail("redis node "+n.Options().Addr+" does not answer", err))
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			return s.fail("ping: cluster state", err)
		}
	} else if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.mu.Lock()
		master := s.master
		s.mu.Unlock()
		errs = append(errs, s.fail("redis master "+master+" does not answer", err))
	}
	for _, st := range s.NodeStatus() {
		if !st.PubSubUp {
			errs = append(errs, fmt.Errorf("redisstore: Pub/Sub connection to redis node %s is down: %w", st.Addr, routing.ErrUnavailable))
		}
	}
	return errors.Join(errs...)
}

// Close stops the Pub/Sub readers and the batchers, and closes every
// connection pool. A Follow or Unfollow still waiting returns.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.topoEnd
		s.closeErr = s.closeAll()
	})
	return s.closeErr
}

// closeAll closes what New opened.
func (s *Store) closeAll() error {
	var errs []error
	for _, ps := range s.watchers {
		errs = append(errs, ps.Close())
	}
	for _, sc := range s.sentinels {
		errs = append(errs, sc.Close())
	}
	s.mu.Lock()
	nodes := s.nodes
	s.nodes = map[string]*node{}
	s.mu.Unlock()
	for _, n := range nodes {
		errs = append(errs, n.close())
	}
	errs = append(errs, s.rdb.Close())
	return errors.Join(errs...)
}

// errClosed answers a Follow or Unfollow that Close cut short.
var errClosed = errors.New("redisstore: store closed")

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
		redis.IsReadOnlyError(err) || redis.IsMaxClientsError(err) || isRedirect(err) ||
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

// clientDefaults sets what every kind of client (one node, Sentinel,
// Cluster) gets alike: callers' deadlines bound each call, a command is
// not retried unless the URL asks for it (a retried XADD could append
// twice), and RESP2 unless the URL asks for RESP3.
func clientDefaults(ctxTimeout *bool, maxRetries, protocol *int, resp2 bool) {
	*ctxTimeout = true
	if *maxRetries == 0 {
		*maxRetries = -1
	}
	if resp2 {
		*protocol = 2
	}
}
