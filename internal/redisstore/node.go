package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// A node is one Redis master as the follower sees it: the Pub/Sub
// connection that hears the keyspace notifications of the keys it holds,
// and the batcher that writes its SUBSCRIBEs. One Redis has one node; a
// Sentinel set-up has one, replaced when another server becomes master; a
// Cluster has one per master, because a notification fires only on the
// node holding the key and a connection hears only its own node.
type node struct {
	s    *Store
	addr string
	// client talks to this node alone: CONFIG is per node, and so is the
	// Pub/Sub connection it opens.
	client    *redis.Client
	ownClient bool // closed with the node (not the single-node client)
	ps        *redis.PubSub

	// Follow and Unfollow requests on their way to the batcher, and
	// Follows to send again because their connection was replaced.
	incoming atomic.Pointer[request]
	retried  atomic.Pointer[request]
	wake     chan struct{}

	mu      sync.Mutex
	pending map[string]*pendingOp // by channel: the oldest unconfirmed
	lost    bool                  // the Pub/Sub connection failed since it last delivered
	losses  int                   // how often it did, for tests and metrics

	closing    chan struct{}
	closeOnce  sync.Once
	readerEnd  chan struct{}
	batcherEnd chan struct{}
}

// errNodeGone answers a Follow whose node stopped being a master (or the
// store closed) before it was confirmed; the caller may try again.
var errNodeGone = fmt.Errorf("redisstore: follow: the Redis node was replaced: %w", routing.ErrUnavailable)

// startNode starts the reader and the batcher of the node at addr, whose
// client is c.
func (s *Store) startNode(addr string, c *redis.Client, own bool) *node {
	n := &node{
		s:          s,
		addr:       addr,
		client:     c,
		ownClient:  own,
		wake:       make(chan struct{}, 1),
		pending:    make(map[string]*pendingOp),
		closing:    make(chan struct{}),
		readerEnd:  make(chan struct{}),
		batcherEnd: make(chan struct{}),
	}
	n.ps = c.Subscribe(context.Background()) // no channel yet: no connection either
	go n.readPubSub()
	go n.runBatcher()
	return n
}

// close stops the node and answers every request still queued on it.
func (n *node) close() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.closing)
		err = n.ps.Close()
		<-n.readerEnd
		<-n.batcherEnd
		for _, stack := range []*atomic.Pointer[request]{&n.retried, &n.incoming} {
			for _, r := range takeAll(stack, nil) {
				n.s.answer(r, notice.Zero, errNodeGone)
			}
		}
		if n.ownClient {
			err = errors.Join(err, n.client.Close())
		}
	})
	return err
}

// untilClose returns a context that ends when the node closes.
func (n *node) untilClose() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-n.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// lossCount is how often the Pub/Sub connection failed.
func (n *node) lossCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.losses
}

// pendingCount is how many channels await a confirmation, for tests.
func (n *node) pendingCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.pending)
}
