package sse

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Event is one event as a browser's EventSource dispatches it.
type Event struct {
	ID      string // the last event id after this event (as the browser keeps it)
	HasID   bool   // the event itself carried an id field
	Type    string // "message" when none was given
	Data    string
	Retry   int64 // last retry value seen, 0 if none
	Comment bool  // a comment line alone (a heartbeat), reported for tests
}

// Reader parses an event stream the way the HTML standard tells browsers
// to. noticed's tests read streams with it, so that they see
// exactly what an EventSource would.
type Reader struct {
	r      *bufio.Reader
	lastID string
	retry  int64
	// Comments makes Next return heartbeat comments as events too.
	Comments bool
	// ReadState makes Next return the read state a stream starts with
	// (an "event: read" with no id); otherwise Initial holds it, and
	// tests of events see only events. Read marks later in the stream
	// are always returned.
	ReadState bool

	started bool
	initial *Event
}

// Initial returns the read-state block the stream started with, once
// Next has gone past it (nil when there was none or ReadState is set).
func (p *Reader) Initial() *Event { return p.initial }

// NewReader reads events from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 4096)}
}

// Retry returns the last reconnection delay the stream set, in ms (0 if
// none), as the browser would keep it.
func (p *Reader) Retry() int64 { return p.retry }

// LastID returns the last event id as the browser would keep it (an
// EventSource sends it as Last-Event-ID when it reconnects).
func (p *Reader) LastID() string { return p.lastID }

// readLine returns one line without its terminator; lines end in CRLF, LF
// or CR.
func (p *Reader) readLine() (string, error) {
	var sb strings.Builder
	for {
		b, err := p.r.ReadByte()
		if err != nil {
			if sb.Len() > 0 && err == io.EOF {
				// An unterminated last line is discarded by browsers too.
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		switch b {
		case '\n':
			return sb.String(), nil
		case '\r':
			if next, err := p.r.Peek(1); err == nil && next[0] == '\n' {
				p.r.ReadByte()
			}
			return sb.String(), nil
		default:
			sb.WriteByte(b)
		}
	}
}

// Next returns the next dispatched event.
func (p *Reader) Next() (Event, error) {
	for {
		ev, err := p.next()
		if err != nil || ev.Comment || p.started {
			return ev, err
		}
		p.started = true
		if !p.ReadState && ev.Type == "read" && !ev.HasID {
			p.initial = &ev
			continue
		}
		return ev, nil
	}
}

func (p *Reader) next() (Event, error) {
	var data strings.Builder
	var typ string
	hasData, hasID := false, false
	for {
		line, err := p.readLine()
		if err != nil {
			return Event{}, err
		}
		if line == "" {
			if !hasData {
				typ, hasID = "", false
				continue
			}
			d := data.String()
			d = strings.TrimSuffix(d, "\n")
			if typ == "" {
				typ = "message"
			}
			return Event{ID: p.lastID, HasID: hasID, Type: typ, Data: d, Retry: p.retry}, nil
		}
		if line[0] == ':' {
			if p.Comments {
				return Event{Comment: true, Data: line[1:], ID: p.lastID, Retry: p.retry}, nil
			}
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			typ = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				p.lastID, hasID = value, true
			}
		case "retry":
			if n, err := strconv.ParseInt(value, 10, 64); err == nil && n >= 0 && isDigits(value) {
				p.retry = n
			}
		}
	}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
