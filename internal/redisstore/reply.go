package redisstore

import (
	"fmt"

	"github.com/noticed/noticed/internal/notice"
)

// Replies are parsed here from go-redis' generic values rather than through
// its typed stream commands: XMessage.Values is a map, which loses the
// field order an entry without a data field is delivered in.

// parseEntries reads an XRANGE or XREVRANGE reply.
func parseEntries(v any) ([]notice.Entry, error) {
	items, ok := v.([]any)
	if !ok {
		if v == nil {
			return nil, nil
		}
		return nil, fmt.Errorf("redisstore: range reply is %T, not an array", v)
	}
	out := make([]notice.Entry, 0, len(items))
	for _, it := range items {
		id, fields, err := parseEntry(it)
		if err != nil {
			return nil, err
		}
		out = append(out, notice.FromFields(id, fields))
	}
	return out, nil
}

// parseEntry reads one [id, [field, value, ...]] pair.
func parseEntry(v any) (notice.ID, []string, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return notice.Zero, nil, fmt.Errorf("redisstore: stream entry is %#v, not [id, fields]", v)
	}
	id, err := parseID(pair[0])
	if err != nil {
		return notice.Zero, nil, err
	}
	raw, _ := pair[1].([]any)
	fields := make([]string, len(raw))
	for i, f := range raw {
		s, ok := f.(string)
		if !ok {
			return notice.Zero, nil, fmt.Errorf("redisstore: entry %v: field is %T, not a string", id, f)
		}
		fields[i] = s
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
	fields := map[string]any{}
	switch m := v.(type) {
	case map[any]any:
		for k, val := range m {
			if ks, ok := k.(string); ok {
				fields[ks] = val
			}
		}
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			if ks, ok := m[i].(string); ok {
				fields[ks] = m[i+1]
			}
		}
	default:
		return streamInfo{}, fmt.Errorf("redisstore: XINFO STREAM reply is %T", v)
	}

	var info streamInfo
	var err error
	length, ok := fields["length"].(int64)
	if !ok {
		return info, fmt.Errorf("redisstore: XINFO STREAM length is %T", fields["length"])
	}
	info.length = length
	if info.lastGenerated, err = parseID(fields["last-generated-id"]); err != nil {
		return info, err
	}
	// Before Redis 7.0 there is no max-deleted-entry-id: XDEL then goes
	// unnoticed, as it always did.
	if md, ok := fields["max-deleted-entry-id"]; ok {
		if info.maxDeleted, err = parseID(md); err != nil {
			return info, err
		}
	}
	if fe := fields["first-entry"]; fe != nil && info.length > 0 {
		if info.first, _, err = parseEntry(fe); err != nil {
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
