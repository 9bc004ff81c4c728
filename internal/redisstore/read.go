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
//
// This is the hub's path for every event, so it allocates little of its
// own: one array for every command's arguments, one for every entry, and
// one scratch slice for the fields of each entry in turn.
func (s *Store) Read(ctx context.Context, cursors []routing.Cursor) ([]routing.Batch, error) {
	if len(cursors) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	ranges := make([]*redis.Cmd, len(cursors))
	infos := make([]*redis.Cmd, len(cursors))
	holds := make([]*redis.Cmd, len(cursors))
	args := make([]any, 0, 6*len(cursors))
	var count any // boxed once for as long as the cursors' counts agree
	lastCount := -1
	var idText []byte
	for i, c := range cursors {
		key := s.key(c.User)
		// Nothing can follow the largest id, and Redis refuses an
		// exclusive range that starts there: no XRANGE for it.
		if c.After != notice.Last {
			idText = c.After.AppendTo(append(idText[:0], '('))
			first := len(args)
			args = append(args, "XRANGE", key, string(idText), "+")
			if c.Count > 0 {
				if c.Count != lastCount {
					count, lastCount = c.Count, c.Count
				}
				args = append(args, "COUNT", count)
			}
			// Capped, so that nothing appended to one command's arguments
			// can reach the next one's.
			ranges[i] = pipe.Do(ctx, args[first:len(args):len(args)]...)
		}
		if c.CheckGap && !c.After.IsZero() {
			infos[i] = pipe.Do(ctx, "XINFO", "STREAM", key)
			if c.Delivered && c.After != notice.Last {
				// Is the entry this reader last read still there? See
				// lostUnder.
				exact := c.After.String()
				holds[i] = pipe.Do(ctx, "XRANGE", key, exact, exact)
			}
		}
	}
	// XINFO on a missing key is an error reply that means "gap", so each
	// command's own error is looked at instead of Exec's first one.
	_, _ = pipe.Exec(ctx)

	total := 0
	for i := range cursors {
		if ranges[i] == nil {
			continue
		}
		if err := ranges[i].Err(); err != nil {
			return nil, s.fail("read", err)
		}
		if items, ok := ranges[i].Val().([]any); ok {
			total += len(items)
		}
	}
	all := make([]notice.Entry, 0, total)
	var lost []lostCursor
	var fields []string
	out := make([]routing.Batch, len(cursors))
	for i, c := range cursors {
		first := len(all)
		var marked notice.ID
		if ranges[i] != nil {
			var err error
			if all, fields, marked, err = appendEntries(all, fields, ranges[i].Val()); err != nil {
				return nil, err
			}
			// A marker another reader left: it had read entries up to
			// marked that Redis no longer holds.
			out[i].Gap = out[i].Gap || c.After.Less(marked)
		}
		if len(all) > first {
			out[i].Entries = all[first:len(all):len(all)]
		}
		if infos[i] == nil {
			continue
		}
		if err := infos[i].Err(); err != nil {
			if !isNoSuchKey(err) {
				return nil, s.fail("read", err)
			}
			out[i].Gap, out[i].Ahead = true, true // expired or deleted
			continue
		}
		info, err := parseStreamInfo(infos[i].Val())
		if err != nil {
			return nil, err
		}
		out[i].Ahead = info.lastGenerated.Less(c.After)
		out[i].Gap = out[i].Gap || out[i].Ahead || gap(c.After, info)
		switch {
		case out[i].Ahead && c.Delivered:
			lost = append(lost, lostCursor{c, true})
		case holds[i] != nil && marked.Less(c.After) && lostUnder(c.After, info, holds[i]):
			lost = append(lost, lostCursor{c, false})
			// Entries written after the failover may carry ids below the
			// cursor (the same millisecond, or a new master whose clock is
			// behind): this reader skips them, so its streams are told.
			out[i].Gap = true
		}
	}
	if len(lost) > 0 {
		s.markLost(ctx, lost)
	}
	return out, nil
}

// lostUnder reports whether the entry at after, which this reader read, is
// gone although nothing removed it: it is neither below the first entry
// kept (trimmed) nor at or below the highest XDEL. A failover erased it,
// and newer entries have come since, so the cursor is not ahead.
func lostUnder(after notice.ID, info streamInfo, hold *redis.Cmd) bool {
	items, ok := hold.Val().([]any)
	if hold.Err() != nil || !ok || len(items) > 0 || info.length == 0 {
		return false
	}
	return !after.Less(info.first) && info.maxDeleted.Less(after)
}

// lostCursor is a cursor whose entries up to After Redis lost; ahead when
// the stream no longer reaches it.
type lostCursor struct {
	routing.Cursor
	ahead bool
}

// lostField names the one field of a loss marker: an entry that says
// entries up to its value were read by some reader and are gone from
// Redis (a failover or restart lost them). A reader below that id was
// never given them and announces a gap; readers at or past it skip the
// marker. Markers are never delivered as entries.
const lostField = "noticed-lost"

// markLost appends a loss marker to each cursor's stream, which no longer
// holds the entry at the cursor although this reader read it there: the
// entries up to it were lost after this reader read them (or Redis's clock
// went back). When the stream's newest entry is below the cursor, the
// marker goes just above the cursor; otherwise after the newest. Best
// effort: should an entry have been added above the cursor meanwhile, the
// first XADD is refused, and the next gap check marks the loss after it.
func (s *Store) markLost(ctx context.Context, cursors []lostCursor) {
	pipe := s.rdb.Pipeline()
	for _, c := range cursors {
		// Just above the cursor, so that the stream reaches it again and
		// every later entry comes after it; when newer entries came since,
		// after them (Redis refuses an id at or below the newest).
		next := notice.ID{Ms: c.After.Ms, Seq: c.After.Seq + 1}
		if next.Seq == 0 {
			next = notice.ID{Ms: c.After.Ms + 1}
		}
		id := next.String()
		if !c.ahead {
			id = "*"
		}
		args := &redis.XAddArgs{Stream: s.key(c.User), ID: id, Values: []any{lostField, c.After.String()}}
		if s.maxLen > 0 {
			args.MaxLen, args.Approx = s.maxLen, true
		}
		pipe.XAdd(ctx, args)
		if s.ttl > 0 {
			pipe.PExpire(ctx, s.key(c.User), s.ttl)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Warn("could not record entries lost by Redis; readers behind may not be told of the gap", "users", len(cursors), "err", err)
		return
	}
	s.log.Warn("Redis lost entries this instance had delivered (a failover or restart); recorded so that other readers get a gap", "users", len(cursors))
}

func isNoSuchKey(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(err.Error(), "no such key")
}
