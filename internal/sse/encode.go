// Package sse writes Server-Sent Events: the framing of each event and the
// handler that holds a browser's EventSource open.
package sse

import (
	"errors"
	"strconv"
	"strings"

	"github.com/noticed/noticed/internal/notice"
)

// ErrBadField is returned for an id or event type that would break the
// framing: a CR, LF or NUL in it could end the field early and forge another.
var ErrBadField = errors.New("sse: id or event type holds CR, LF or NUL")

// Field is an event's id or type, checked at construction so that no
// event with a forged field can be built.
type Field struct{ s string }

// NewField checks s for CR, LF and NUL.
func NewField(s string) (Field, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return Field{}, ErrBadField
	}
	return Field{s}, nil
}

// String gives the field's text.
func (f Field) String() string { return f.s }

// AppendEvent appends one event to dst: "id:" when id is non-empty,
// "event:" when typ is neither empty nor "message", then one "data:" line
// per line of data (split on CRLF, LF and CR, so the payload cannot start a
// field or an event of its own), then the blank line that dispatches it.
func AppendEvent(dst []byte, id, typ Field, data string) []byte {
	if id.s != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, id.s...)
		dst = append(dst, '\n')
	}
	if typ.s != "" && typ.s != "message" {
		dst = append(dst, "event: "...)
		dst = append(dst, typ.s...)
		dst = append(dst, '\n')
	}
	dst = appendData(dst, data)
	return append(dst, '\n')
}

// appendData writes at least one data line: a browser dispatches an event
// with empty data only if it saw a "data:" field.
func appendData(dst []byte, data string) []byte {
	for {
		i := strings.IndexAny(data, "\r\n")
		if i < 0 {
			dst = append(dst, "data: "...)
			dst = append(dst, data...)
			return append(dst, '\n')
		}
		dst = append(dst, "data: "...)
		dst = append(dst, data[:i]...)
		dst = append(dst, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// AppendEntry appends a stream entry as an event whose id is the entry id.
// An event type that cannot be framed (only producers writing to Redis
// directly can store one) is left out, so the entry still arrives, as a
// plain message, rather than being lost.
func AppendEntry(dst []byte, e notice.Entry) []byte {
	dst = append(dst, "id: "...)
	dst = e.ID.AppendTo(dst)
	dst = append(dst, '\n')
	if typ, err := NewField(e.Event); err == nil && typ.s != "" && typ.s != "message" {
		dst = append(dst, "event: "...)
		dst = append(dst, typ.s...)
		dst = append(dst, '\n')
	}
	dst = appendData(dst, e.Data)
	return append(dst, '\n')
}

// AppendRetry appends a "retry:" field telling the browser how long to wait
// before it reconnects.
func AppendRetry(dst []byte, ms int64) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, ms, 10)
	return append(dst, '\n', '\n')
}

// Ping is the heartbeat comment that keeps idle streams and proxies alive.
const Ping = ": ping\n\n"

// AppendPosition appends an id with no data: a browser takes it as its
// last event id without dispatching an event.
func AppendPosition(dst []byte, id notice.ID) []byte {
	dst = append(dst, "id: "...)
	dst = id.AppendTo(dst)
	return append(dst, '\n', '\n')
}

// AppendGap appends the event announcing that entries after lastEventID
// may have been lost. It has no id, so the browser keeps its own.
func AppendGap(dst []byte, lastEventID notice.ID) []byte {
	dst = append(dst, "event: gap\ndata: {\"lastEventId\":\""...)
	dst = lastEventID.AppendTo(dst)
	return append(dst, "\"}\n\n"...)
}
