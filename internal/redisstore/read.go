package redisstore

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// Read answers every cursor in one pipelined round trip: XRANGE after the
// cursor's id and, when a gap check is asked for, XINFO STREAM after it.
// The order matters: anything trimmed before XRANGE ran has moved the first
// retained id by the time XINFO runs, so no real gap is missed.
func (s *Store) Read(ctx context.Context, cursors []routing.Cursor) ([]routing.Batch, error) {
	if len(cursors) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	ranges := make([]*redis.Cmd, len(cursors))
	infos := make([]*redis.Cmd, len(cursors))
	for i, c := range cursors {
		key := s.key(c.User)
		args := []any{"XRANGE", key, "(" + c.After.String(), "+"}
		if c.Count > 0 {
			args = append(args, "COUNT", c.Count)
		}
		ranges[i] = pipe.Do(ctx, args...)
		if c.CheckGap && !c.After.IsZero() {
			infos[i] = pipe.Do(ctx, "XINFO", "STREAM", key)
		}
	}
	// XINFO on a missing key is an error reply that means "gap", so each
	// command's own error is looked at instead of Exec's first one.
	_, _ = pipe.Exec(ctx)

	out := make([]routing.Batch, len(cursors))
	for i, c := range cursors {
		if err := ranges[i].Err(); err != nil {
			return nil, s.fail("read", err)
		}
		entries, err := parseEntries(ranges[i].Val())
		if err != nil {
			return nil, err
		}
		out[i].Entries = entries
		if infos[i] == nil {
			continue
		}
		if err := infos[i].Err(); err != nil {
			if !isNoSuchKey(err) {
				return nil, s.fail("read", err)
			}
			out[i].Gap = true // expired or deleted
			continue
		}
		info, err := parseStreamInfo(infos[i].Val())
		if err != nil {
			return nil, err
		}
		out[i].Gap = gap(c.After, info)
	}
	return out, nil
}

func isNoSuchKey(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(err.Error(), "no such key")
}

// newest returns the id of the newest entry of key, zero when it has none.
func (s *Store) newest(ctx context.Context, key string) (notice.ID, error) {
	v, err := s.rdb.Do(ctx, "XREVRANGE", key, "+", "-", "COUNT", 1).Result()
	if err != nil {
		return notice.Zero, s.fail("newest entry", err)
	}
	entries, err := parseEntries(v)
	if err != nil || len(entries) == 0 {
		return notice.Zero, err
	}
	return entries[0].ID, nil
}
