package redisstore

import (
	"context"
	"errors"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

var _ routing.Backlog = (*Store)(nil)

// ReadBack returns up to count entries below before, newest first
// (XREVRANGE with an exclusive end). Every opening stream reads its user's
// read state this way: read-backs that arrive together share a pipeline
// (see coalescer).
func (s *Store) ReadBack(ctx context.Context, user string, before notice.ID, count int) ([]notice.Entry, error) {
	end := "+"
	if before != notice.Last {
		if before.IsZero() {
			return nil, nil
		}
		end = "(" + before.String()
	}
	args := []any{"XREVRANGE", s.key(user), end, "-"}
	if count > 0 {
		args = append(args, "COUNT", count)
	}
	r := &readBackReq{ctx: ctx, args: args, done: make(chan struct{})}
	s.readBacks.submit(r)
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, s.fail("read back", ctx.Err())
	}
	if r.err != nil {
		return nil, s.fail("read back", r.err)
	}
	out, _, _, err := appendEntries(nil, nil, r.val)
	return out, err
}

// At most maxReadBacksInFlight pipelines of read-backs are under way at
// once, each of at most maxReadBackBatch commands.
const (
	maxReadBacksInFlight = 2
	maxReadBackBatch     = 512
)

// readBackReq is one ReadBack waiting for its pipeline.
type readBackReq struct {
	ctx  context.Context // its caller's: once it ends, the read is not sent
	args []any
	val  any
	err  error
	done chan struct{}
}

// pipelineReadBacks sends batch in one pipeline, leaving out requests
// whose callers have gone, and answers each with its own command's
// outcome. The pipeline is bounded by sendTimeout, not by any one
// caller's context; on a Cluster it waits for its slowest master.
func (s *Store) pipelineReadBacks(batch []*readBackReq) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, r := range batch {
		if r.ctx.Err() == nil {
			cmds[i] = pipe.Do(ctx, r.args...)
		}
	}
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx) // each command holds its own error
	}
	for i, r := range batch {
		if cmds[i] != nil {
			r.val, r.err = cmds[i].Result()
		} else {
			r.err = r.ctx.Err()
		}
		close(r.done)
	}
}

// appendIfNewest is XADD behind a check of the stream's newest entry, in
// one script on the user's one key: atomic on a single Redis, and on a
// Cluster too, since the key names its slot. The keyspace notification
// of its XADD reaches followers as any other append's does.
var appendIfNewest = redis.NewScript(`
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local newest = '0-0'
if #top > 0 then newest = top[1][1] end
if newest ~= ARGV[1] then return false end
local args = {'XADD', KEYS[1]}
if tonumber(ARGV[2]) > 0 then
  table.insert(args, 'MAXLEN'); table.insert(args, '~'); table.insert(args, ARGV[2])
end
table.insert(args, '*')
if ARGV[4] ~= '' then table.insert(args, 'event'); table.insert(args, ARGV[4]) end
table.insert(args, 'data'); table.insert(args, ARGV[5])
local id = redis.call(unpack(args))
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return id
`)

// AppendIfNewest appends m while the newest retained entry is newest. Like
// Append, it is not retried: a reply lost on the way may hide an append.
func (s *Store) AppendIfNewest(ctx context.Context, m routing.Message, newest notice.ID) (notice.ID, error) {
	maxLen := max(s.maxLen, 0)
	ttl := max(s.ttl.Milliseconds(), 0)
	v, err := appendIfNewest.Run(ctx, s.rdb, []string{s.key(m.User)},
		newest.String(), strconv.FormatInt(maxLen, 10), strconv.FormatInt(ttl, 10), m.Event, m.Data).Result()
	if errors.Is(err, redis.Nil) {
		return notice.Zero, routing.ErrNotNewest
	}
	if err != nil {
		return notice.Zero, s.fail("append if newest", err)
	}
	return parseID(v)
}
