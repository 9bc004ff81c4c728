package redisstore

import (
	"errors"
	"fmt"

	"github.com/noticed/noticed/internal/notice"
)

// Replies are parsed here from go-redis' generic values rather than through
// its typed stream commands: XMessage.Values is a map, which loses the
// field order an entry without a data field is delivered in.

// appendEntries appends the entries of an XRANGE reply to dst, and returns
// the highest id that loss markers among them name (zero if none); the
// markers themselves are not entries. fields is scratch space for one
// entry's fields, handed back for the next call: notice.FromFields keeps
// none of it.
func appendEntries(dst []notice.Entry, fields []string, v any) ([]notice.Entry, []string, notice.ID, error) {
	var lost notice.ID
	items, ok := v.([]any)
	if !ok {
		if v == nil {
			return dst, fields, lost, nil
		}
		return dst, fields, lost, fmt.Errorf("redisstore: range reply is %T, not an array", v)
	}
	for _, it := range items {
		var id notice.ID
		var err error
		if id, fields, err = parseEntry(it, fields[:0]); err != nil {
			return dst, fields, lost, err
		}
		if len(fields) == 2 && fields[0] == lostField {
			if x, err := notice.ParseID(fields[1]); err == nil && lost.Less(x) {
				lost = x
			}
			continue
		}
		dst = append(dst, notice.FromFields(id, fields))
	}
	return dst, fields, lost, nil
}

// newestID reads an XREVRANGE … COUNT 1 reply: the id of its one entry, or
// zero when the stream is empty or missing.
func newestID(v any) (notice.ID, error) {
	items, ok := v.([]any)
	if !ok && v != nil {
		return notice.Zero, fmt.Errorf("redisstore: range reply is %T, not an array", v)
	}
	if len(items) == 0 {
		return notice.Zero, nil
	}
	return entryID(items[0])
}

// entryID reads the id of one [id, [field, value, ...]] pair.
func entryID(v any) (notice.ID, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return notice.Zero, fmt.Errorf("redisstore: stream entry is %#v, not [id, fields]", v)
	}
	return parseID(pair[0])
}

// parseEntry reads one [id, [field, value, ...]] pair, appending the
// fields to fields.
func parseEntry(v any, fields []string) (notice.ID, []string, error) {
	id, err := entryID(v)
	if err != nil {
		return notice.Zero, fields, err
	}
	raw, _ := v.([]any)[1].([]any)
	for _, f := range raw {
		s, ok := f.(string)
		if !ok {
			return notice.Zero, fields, fmt.Errorf("redisstore: entry %v: field is %T, not a string", id, f)
		}
		fields = append(fields, s)
	}
	return id, fields, nil
}

// streamInfo is what gap detection needs from XINFO STREAM.
type streamInfo struct {
	length        int64
	lastGenerated notice.ID
	// maxDeleted is the highest id XDEL removed; Redis 7.0 leaves it at
	// 0-0 for what MAXLEN and XTRIM remove.
	maxDeleted notice.ID
	first      notice.ID // zero when the stream is empty
}

// parseStreamInfo reads XINFO STREAM as RESP2 (a flat array of names and
// values) or RESP3 (a map).
func parseStreamInfo(v any) (streamInfo, error) {
	var info streamInfo
	var err error
	var haveLength, haveLast bool
	var firstEntry any
	field := func(name string, val any) {
		if err != nil {
			return
		}
		switch name {
		case "length":
			info.length, haveLength = val.(int64)
			if !haveLength {
				err = fmt.Errorf("redisstore: XINFO STREAM length is %T", val)
			}
		case "last-generated-id":
			info.lastGenerated, err = parseID(val)
			haveLast = true
		case "max-deleted-entry-id":
			// Missing before Redis 7.0: XDEL then goes unnoticed, as it
			// always did.
			info.maxDeleted, err = parseID(val)
		case "first-entry":
			firstEntry = val
		}
	}
	switch m := v.(type) {
	case map[any]any:
		for k, val := range m {
			if name, ok := k.(string); ok {
				field(name, val)
			}
		}
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			if name, ok := m[i].(string); ok {
				field(name, m[i+1])
			}
		}
	default:
		return info, fmt.Errorf("redisstore: XINFO STREAM reply is %T", v)
	}
	if err != nil {
		return info, err
	}
	if !haveLength || !haveLast {
		return info, errors.New("redisstore: XINFO STREAM lacks length or last-generated-id")
	}
	if firstEntry != nil && info.length > 0 {
		if info.first, err = entryID(firstEntry); err != nil {
			return info, err
		}
	}
	return info, nil
}

// gap reports whether entries after the cursor after may have been
// removed before they were read. Redis 7.0 does not record what MAXLEN or
// XTRIM removed, so the first retained id stands in for it: a cursor before
// it may have lost entries, or only its own (when that was the last one
// trimmed: the one spurious case). A stream that never trimmed anything yet
// starts after the cursor was created again after it expired: a gap too.
func gap(after notice.ID, info streamInfo) bool {
	if after.Less(info.maxDeleted) {
		return true // XDEL removed an entry after the cursor
	}
	if info.length == 0 {
		return after.Less(info.lastGenerated) // all that followed is gone
	}
	return after.Less(info.first)
}
