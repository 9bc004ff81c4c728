package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

const (
	// maxLine bounds one line of an event stream (a long replayed gap
	// event at most; the benchmark's own events are under 100 bytes).
	maxLine = 1 << 20
	// openWait bounds connecting and waiting for the headers and the first
	// line; idleLimit, the silence after which a stream is taken for dead
	// (both servers send a heartbeat every 15 s).
	openWait  = 15 * time.Second
	idleLimit = 60 * time.Second
)

// streamClient is one EventSource-like stream: a raw TCP connection with a
// hand-written GET, the response read by respReader, and the event stream
// parsed line by line without allocating per event. It has no goroutine:
// one of the fleet's event loops (loop_linux.go) owns it for the whole
// run, connecting, reading and reconnecting with Last-Event-ID as a
// browser would.
type streamClient struct {
	f      *fleet
	loop   *loop
	user   []byte
	target string     // request target: "/notice?token=..." or "/sub/<user>"
	src    netip.Addr // the source address to bind, when valid

	// Only the owning loop's goroutine touches the rest.
	idx      int32  // in loop.streams
	fd       int32  // the connection's socket; -1 when none
	gen      uint32 // counts connections, so that a closed one's events are known stale
	phase    uint8
	holding  bool  // holds one of the loop's in-flight slots
	deadline int64 // loop clock: the end of openWait, or of idleLimit once open
	backoff  time.Duration
	out      []byte // the request's unsent rest, rarely any
	resp     respReader

	lastID []byte // the browser's "last event ID"
	seen   seqSet
	got    int64 // distinct events received
	caught bool  // reached the storm's expected count
	opened bool  // has been open once
	back   bool  // has been open since the storm's reconnect
	data   []byte
	typ    []byte
}

// statusError is a refused open: a status other than 200.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("status %d", e.code)
	}
	return fmt.Sprintf("status %d %s", e.code, e.body)
}

// request is the GET a reconnecting EventSource would send.
func (s *streamClient) request() []byte { return s.appendRequest(nil) }

// appendRequest appends the request to b.
func (s *streamClient) appendRequest(b []byte) []byte {
	b = append(b, "GET "...)
	b = append(b, s.target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, s.f.spec.Host...)
	b = append(b, "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"...)
	if len(s.lastID) > 0 {
		b = append(b, "Last-Event-ID: "...)
		b = append(b, s.lastID...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// field takes one line of the event stream as the HTML standard's
// EventSource does: a blank line dispatches the event, a colon first is a
// comment, "id" sets the last event id (kept for Last-Event-ID), "data"
// lines add up.
func (s *streamClient) field(line []byte) {
	if len(line) == 0 {
		if len(s.data) > 0 {
			s.dispatch(s.data[:len(s.data)-1], s.typ)
		}
		s.data, s.typ = s.data[:0], s.typ[:0]
		if cap(s.data) > 4096 {
			s.data = nil
		}
		return
	}
	if line[0] == ':' {
		return
	}
	name, value, found := bytes.Cut(line, []byte{':'})
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(name) {
	case "data":
		s.data = append(s.data, value...)
		s.data = append(s.data, '\n')
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			s.lastID = append(s.lastID[:0], value...)
		}
	case "event":
		s.typ = append(s.typ[:0], value...)
	}
}

// dispatch checks one event: its user, its sequence number (a second
// copy is a duplicate), and records its latency when it was sent in the
// measured window.
func (s *streamClient) dispatch(data, typ []byte) {
	f := s.f
	if string(typ) == "gap" {
		f.gaps.Add(1)
		return
	}
	if string(typ) == "read" {
		// noticed's read state, the first block of every stream: not an
		// event of the benchmark's, and not a wrong one either.
		return
	}
	if f.spec.Kind == "centrifugo" {
		var err error
		if data, err = centrifugoData(data); errors.Is(err, errNotPublication) {
			return // a ping, or the connect push
		} else if err != nil {
			f.bad.Add(1)
			return
		}
	}
	p, ok := parsePayload(data)
	if !ok || (len(typ) > 0 && string(typ) != "message") || p.seq > maxSeq {
		f.bad.Add(1)
		return
	}
	now := time.Now().UnixNano()
	if !bytes.Equal(p.user, s.user) {
		f.misrouted.Add(1)
		return
	}
	if s.seen.testAndSet(p.seq) {
		f.dups.Add(1)
		return
	}
	s.got++
	f.received.Add(1)
	if p.phase == phaseMeasured {
		f.recordLatency(time.Duration(now - p.sentNs))
	}
	if st := f.stormState(); st != nil && !s.caught && s.got >= st.expect {
		s.caught = true
		st.caughtUp(time.Duration(now - st.start.UnixNano()))
	}
}

// simplifyNetErr keeps what tells failures apart (connection refused,
// timeout, reset) and drops the addresses, so that failures of many
// streams group under one reason.
func simplifyNetErr(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return errors.New("timeout")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("connection closed")
	}
	return err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// maxSeq bounds a sequence number taken from a payload, so that a
// corrupted one cannot make seqSet allocate gigabytes.
const maxSeq = 1 << 26

// seqSet is the set of sequence numbers (from 1) a stream has received.
type seqSet struct{ words []uint64 }

// testAndSet adds n and reports whether it was already there.
func (s *seqSet) testAndSet(n int64) bool {
	w, bit := int(n>>6), uint64(1)<<(n&63)
	if w >= len(s.words) {
		grown := make([]uint64, max(w+1, 2*len(s.words)))
		copy(grown, s.words)
		s.words = grown
	}
	had := s.words[w]&bit != 0
	s.words[w] |= bit
	return had
}
