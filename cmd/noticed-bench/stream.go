package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	// headerBuf reads a response's status line and headers; the body is
	// read through it too when the response is close-delimited, and through
	// a second bodyBuf when it is chunked.
	headerBuf = 1024
	bodyBuf   = 2048
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
// hand-written GET, the response read with http.ReadResponse, and the
// event stream parsed line by line without allocating per event. One
// goroutine runs it for the whole run, reconnecting with Last-Event-ID as
// a browser would.
type streamClient struct {
	f      *fleet
	user   []byte
	target string // request target: "/notice?token=..." or "/sub/<user>"
	src    *net.TCPAddr

	// Only the stream's goroutine touches these.
	lastID []byte // the browser's "last event ID"
	seen   seqSet
	got    int64 // distinct events received
	caught bool  // reached the storm's expected count
	opened bool  // has been open once
	back   bool  // has been open since the storm's reconnect
	data   []byte
	typ    []byte
	long   []byte

	mu       sync.Mutex // guards conn and bouncing, which churn and drop use
	conn     net.Conn
	bouncing bool
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

// errDropped ends a session the fleet dropped while it was connecting.
var errDropped = errors.New("dropped")

// run keeps the stream open until the fleet stops: it reconnects at once
// after churn, waits while the fleet is dropped, and after any other end
// (the server closed it, or refused it) tries again after a short backoff.
func (s *streamClient) run() {
	f := s.f
	defer f.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		if f.ctx.Err() != nil {
			return
		}
		if resume := f.resumeChan(); resume != nil {
			select {
			case <-resume:
			case <-f.ctx.Done():
				return
			}
			continue
		}
		opened, err := s.session()
		bounced := s.endSession()
		switch {
		case f.ctx.Err() != nil:
			return
		case bounced:
			f.churned.Add(1)
			continue
		case f.dropped.Load():
			continue
		case opened:
			// The server, or something between, ended an open stream.
			f.unexpected.Add(1)
			backoff = 100 * time.Millisecond
		default:
			f.openFailed(err)
			backoff = min(backoff*2, 2*time.Second)
		}
		select {
		case <-time.After(backoff/2 + time.Duration(rng(int64(backoff/2)))):
		case <-f.ctx.Done():
			return
		}
	}
}

// session connects, reads the headers and the first line (the stream is
// then open), and reads events until the connection ends. opened says
// whether it got that far.
func (s *streamClient) session() (opened bool, err error) {
	f := s.f
	if f.sem != nil {
		select {
		case f.sem <- struct{}{}:
		case <-f.ctx.Done():
			return false, f.ctx.Err()
		}
	}
	holding := f.sem != nil
	release := func() {
		if holding {
			holding = false
			<-f.sem
		}
	}
	defer release()

	d := net.Dialer{Timeout: openWait, LocalAddr: s.src}
	conn, err := d.DialContext(f.ctx, "tcp", f.spec.Host)
	if err != nil {
		return false, fmt.Errorf("connect: %w", simplifyNetErr(err))
	}
	if !s.setConn(conn) {
		conn.Close()
		return false, errDropped
	}
	_ = conn.SetDeadline(time.Now().Add(openWait))
	if _, err := conn.Write(s.request()); err != nil {
		return false, fmt.Errorf("send request: %w", simplifyNetErr(err))
	}
	br := bufio.NewReaderSize(conn, headerBuf)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false, fmt.Errorf("read headers: %w", simplifyNetErr(err))
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return false, &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	body := br
	if len(resp.TransferEncoding) > 0 || resp.ContentLength >= 0 {
		body = bufio.NewReaderSize(resp.Body, bodyBuf)
	}
	// Open: the headers and the first line (noticed's retry field,
	// Nchan's ": hi" comment) have arrived.
	line, err := s.readLine(body)
	if err != nil {
		return false, fmt.Errorf("read first line: %w", simplifyNetErr(err))
	}
	release()
	f.streamOpened(s)
	s.field(line)

	deadline := time.Now().Add(idleLimit)
	_ = conn.SetDeadline(deadline)
	for {
		line, err := s.readLine(body)
		if err != nil {
			return true, err
		}
		s.field(line)
		// Moving the deadline costs a timer update: do it when half gone.
		if now := time.Now(); deadline.Sub(now) < idleLimit/2 {
			deadline = now.Add(idleLimit)
			_ = conn.SetDeadline(deadline)
		}
	}
}

// request is the GET a reconnecting EventSource would send.
func (s *streamClient) request() []byte {
	b := make([]byte, 0, 160+len(s.target)+len(s.lastID))
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

// readLine returns the next line without its LF or CRLF. It aliases the
// reader's buffer (or s.long for a line longer than the buffer) until the
// next call.
func (s *streamClient) readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(s.long) < maxLine {
			line, err = r.ReadSlice('\n')
			s.long = append(s.long, line...)
		}
		line = s.long
		if err == nil && len(s.long) >= maxLine {
			err = errors.New("line over 1 MiB")
		}
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
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

// setConn records the connection so churn and drop can close it; false
// when the fleet was dropped meanwhile.
func (s *streamClient) setConn(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f.dropped.Load() {
		return false
	}
	s.conn = c
	s.f.connected.Add(1)
	return true
}

// endSession closes the connection and reports whether churn closed it.
func (s *streamClient) endSession() (bounced bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
		s.f.connected.Add(-1)
	}
	bounced, s.bouncing = s.bouncing, false
	return bounced
}

// closeConn ends the current connection, if any; bounce says it is to
// come back at once (churn).
func (s *streamClient) closeConn(bounce bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return false
	}
	s.bouncing = s.bouncing || bounce
	s.conn.Close()
	return true
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
