package redisstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// maxAppendBatch bounds the messages of one append pipeline; at most
// maxAppendsInFlight are under way at once (see coalescer).
const (
	maxAppendsInFlight = 2
	maxAppendBatch     = 1024
)

// appendReq is one Append waiting for its pipeline.
type appendReq struct {
	msgs  []routing.Message
	added []routing.Appended
	err   error
	done  chan struct{}
}

// Append adds each message to its user's stream and refreshes the key's
// time to live, in one pipelined round trip shared with whatever other
// Appends are waiting, and returns the new ids in the messages' order.
//
// No retry: an XADD whose reply was lost may have been applied, and trying
// it again would deliver the event twice. For the same reason an Append
// whose ctx ends while it waits returns ctx's error, though its entries
// may still be added.
func (s *Store) Append(ctx context.Context, msgs []routing.Message) ([]notice.ID, error) {
	added, err := s.AppendChained(ctx, msgs)
	if err != nil {
		return nil, err
	}
	return routing.IDs(added), nil
}

// AppendChained is Append, with the id of the entry before each one where
// it is known (see predecessor).
func (s *Store) AppendChained(ctx context.Context, msgs []routing.Message) ([]routing.Appended, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	r := &appendReq{msgs: msgs, done: make(chan struct{})}
	s.appends.submit(r)
	select {
	case <-r.done:
		return r.added, r.err
	case <-ctx.Done():
		return nil, s.fail("append", ctx.Err())
	}
}

// ErrNotReplicated fails an Append whose entries fewer replicas than
// Options.Replicas acknowledged in time. The entries are on the master and
// may still be delivered; a failover may lose them.
var ErrNotReplicated = fmt.Errorf("redisstore: append: not enough replicas acknowledged the entries in time: %w", routing.ErrUnavailable)

// pipelineAppends runs one pipeline of XADD (and PEXPIRE, and XREVRANGE
// of the two newest entries: see predecessor) for every message of batch, and with Options.Replicas a WAIT after them on the
// same connection (in a Cluster, one pipeline and one WAIT per master,
// since WAIT counts the writes of its own connection). Each request gets
// its own commands' outcome: one refused XADD (a key of the wrong type)
// fails its request only; a lost connection fails them all.
func (s *Store) pipelineAppends(batch []*appendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout+s.replicasWait)
	defer cancel()
	type cmds struct {
		xadd *redis.StringCmd
		exp  *redis.BoolCmd
		tip  *redis.XMessageSliceCmd
		wait *redis.Cmd
		err  error
	}
	var all []*cmds
	var pipes []redis.Pipeliner
	var waits []*cmds // each pipe's commands that its WAIT covers
	var byNode map[*redis.Client]int
	cluster, perNode := s.rdb.(*redis.ClusterClient)
	perNode = perNode && s.replicas > 0
	pipeFor := func(key string) (int, error) {
		if !perNode {
			if len(pipes) == 0 {
				pipes = append(pipes, s.rdb.Pipeline())
			}
			return 0, nil
		}
		c, err := cluster.MasterForKey(ctx, key)
		if err != nil {
			return 0, err
		}
		if byNode == nil {
			byNode = make(map[*redis.Client]int)
		}
		i, ok := byNode[c]
		if !ok {
			i = len(pipes)
			byNode[c] = i
			pipes = append(pipes, c.Pipeline())
		}
		return i, nil
	}
	var pipeOf []int
	for _, r := range batch {
		for _, m := range r.msgs {
			key := s.key(m.User)
			c := &cmds{}
			all = append(all, c)
			p, err := pipeFor(key)
			pipeOf = append(pipeOf, p)
			if err != nil {
				c.err = err
				continue
			}
			pipe := pipes[p]
			values := make([]any, 0, 4)
			if m.Event != "" {
				values = append(values, "event", m.Event)
			}
			values = append(values, "data", m.Data)
			args := &redis.XAddArgs{Stream: key, ID: "*", Values: values}
			if s.maxLen > 0 {
				args.MaxLen, args.Approx = s.maxLen, true
			}
			c.xadd = pipe.XAdd(ctx, args)
			if s.ttl > 0 {
				c.exp = pipe.PExpire(ctx, key, s.ttl)
			}
			c.tip = pipe.XRevRangeN(ctx, key, "+", "-", 2)
		}
	}
	if s.replicas > 0 {
		for _, pipe := range pipes {
			w := &cmds{wait: pipe.Do(ctx, "WAIT", s.replicas, s.replicasWait.Milliseconds())}
			waits = append(waits, w)
		}
	}
	var wg sync.WaitGroup
	for _, pipe := range pipes {
		wg.Go(func() { _, _ = pipe.Exec(ctx) }) // each command holds its own error
	}
	wg.Wait()
	i := 0
	for _, r := range batch {
		r.added = make([]routing.Appended, len(r.msgs))
		for j := range r.msgs {
			c := all[i]
			p := pipeOf[i]
			i++
			if r.err != nil {
				continue
			}
			err := c.err
			if err == nil {
				err = c.xadd.Err()
			}
			if err == nil && c.exp != nil {
				err = c.exp.Err()
			}
			if err != nil {
				r.err = s.fail("append", err)
				continue
			}
			if r.added[j].ID, err = parseID(c.xadd.Val()); err != nil {
				r.err = err
				continue
			}
			r.added[j].Prev, r.added[j].Chained = predecessor(c.xadd.Val(), c.tip)
			if s.replicas > 0 {
				if n, err := waits[p].wait.Int64(); err != nil {
					r.err = s.fail("append: wait for replicas", err)
				} else if n < int64(s.replicas) {
					r.err = fmt.Errorf("%w (%d of %d within %v)", ErrNotReplicated, n, s.replicas, s.replicasWait)
				}
			}
		}
		if r.err != nil {
			r.added = nil
		}
		close(r.done)
	}
}

// predecessor reads the id before the entry id from tip, the stream's two
// newest entries read right after it was added, in the same pipeline. It is
// known only when id is still the newest then: another producer's XADD
// may have come in between (nothing does inside a pipeline's commands, but
// other connections' commands may). A stream with one entry says nothing:
// its entry before may have been trimmed or deleted unread.
//
// A script could answer the predecessor with the id (one XREVRANGE before
// the XADD, nothing in between), but it costs Redis, the resource every
// instance shares, about 12 µs more per event, where this costs it 2.5 µs
// and noticed, which scales out, 7 µs (docs/benchmarks.md).
func predecessor(id string, tip *redis.XMessageSliceCmd) (notice.ID, bool) {
	msgs, err := tip.Result()
	if err != nil || len(msgs) != 2 || msgs[0].ID != id {
		return notice.Zero, false
	}
	prev, err := parseID(msgs[1].ID)
	return prev, err == nil
}
