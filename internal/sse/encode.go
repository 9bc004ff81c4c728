// Package sse writes Server-Sent Events: the framing of each event and the
// handler that holds a browser's EventSource open.
package sse

import (
	"strconv"
	"strings"

	"github.com/noticed/noticed/internal/notice"
)

// AppendEntry appends a stream entry as an event: "id:" the entry id,
// "event:" when its type is neither empty nor "message", then one "data:"
// line per line of its data (split on CRLF, LF and CR, so the payload
// cannot start a field or an event of its own), then the blank line that
// dispatches it. An event type holding CR, LF or NUL, which would end its
// field early and forge another (only producers writing to Redis directly
// can store one), is left out: the entry still arrives, as a plain
// message, rather than being lost.
func AppendEntry(dst []byte, e notice.Entry) []byte {
	dst = append(dst, "id: "...)
	dst = e.ID.AppendTo(dst)
	dst = append(dst, '\n')
	if e.Event != "" && e.Event != "message" && !strings.ContainsAny(e.Event, "\r\n\x00") {
		dst = append(dst, "event: "...)
		dst = append(dst, e.Event...)
		dst = append(dst, '\n')
	}
	dst = appendData(dst, e.Data)
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
