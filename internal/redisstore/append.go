package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// Append adds each message to its user's stream and refreshes the key's
// time to live, all in one pipelined round trip, and returns the new ids
// in the messages' order.
//
// No retry: an XADD whose reply was lost may have been applied, and trying
// it again would deliver the event twice.
func (s *Store) Append(ctx context.Context, msgs []routing.Message) ([]notice.ID, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	adds := make([]*redis.StringCmd, len(msgs))
	for i, m := range msgs {
		key := s.key(m.User)
		values := make([]any, 0, 4)
		if m.Event != "" {
			values = append(values, "event", m.Event)
		}
		values = append(values, "data", m.Data)
		args := &redis.XAddArgs{Stream: key, ID: "*", Values: values}
		if s.maxLen > 0 {
			args.MaxLen, args.Approx = s.maxLen, true
		}
		adds[i] = pipe.XAdd(ctx, args)
		if s.ttl > 0 {
			pipe.PExpire(ctx, key, s.ttl)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.fail("append", err)
	}
	ids := make([]notice.ID, len(msgs))
	for i, c := range adds {
		id, err := parseID(c.Val())
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}
