package sse

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/metrics"
	"github.com/noticed/noticed/internal/routing"
)

// rig is a handler on the memory backend, its streams served on loopback
// TCP connections (a writev needs a real socket).
type rig struct {
	store *memstore.Store
	hub   *routing.Hub
	h     *Handler
	m     *metrics.Metrics
}

func newRig(queueLen int, opts Options) *rig {
	store := memstore.New(memstore.Options{MaxLen: 10000})
	m := metrics.New(prometheus.NewRegistry())
	log := slog.New(slog.DiscardHandler)
	hub := routing.New(store, AppendEntry, routing.Options{QueueLen: queueLen, Metrics: m, Logger: log})
	go hub.Run()
	opts.Metrics, opts.Logger = m, log
	opts.ownWatch = true // the rig's streams run in synctest bubbles
	return &rig{store: store, hub: hub, h: NewHandler(hub, store, opts), m: m}
}

func (r *rig) close() {
	r.hub.Close()
	r.store.Close()
}

// pair returns both ends of a loopback TCP connection. bufSize, when set,
// shrinks the server's send buffer, so that a client that does not read
// fills the socket sooner (its own receive buffer keeps its size: a small
// one makes the kernel wait for its persist timer once it reads again).
// The client's read deadline only keeps a broken stream from hanging the
// test.
func pair(t *testing.T, bufSize int) (srv, cli *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	srv, err = ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	if bufSize > 0 {
		_ = srv.SetWriteBuffer(bufSize)
	}
	_ = cli.SetReadDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { srv.Close(); cli.Close() })
	return srv, cli
}

// takeOver is a response writer whose connection is taken over, as the
// front door's and net/http's are.
type takeOver struct {
	hdr http.Header
	c   net.Conn
}

func (w *takeOver) Header() http.Header { return w.hdr }
func (w *takeOver) WriteHeader(int)     {}
func (w *takeOver) Write([]byte) (int, error) {
	return 0, errors.New("written on the writer, not the connection")
}
func (w *takeOver) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.c, bufio.NewReadWriter(bufio.NewReader(w.c), bufio.NewWriter(w.c)), nil
}

// serve opens a stream for user on c as a request would, and returns it
// armed.
func (r *rig) serve(t *testing.T, user string, expires time.Time, c net.Conn) *stream {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/notice", nil)
	if err := r.h.Serve(&takeOver{hdr: http.Header{}, c: c}, req, user, expires); err != nil {
		t.Fatal(err)
	}
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	for s := range r.h.streams {
		if s.nc == c {
			return s
		}
	}
	t.Fatal("the stream was not taken over")
	return nil
}

// publish appends one event per data to user's stream and returns their ids.
func (r *rig) publish(t *testing.T, user string, data ...string) []string {
	t.Helper()
	msgs := make([]routing.Message, len(data))
	for i, d := range data {
		msgs[i] = routing.Message{User: user, Data: d}
	}
	ids, err := r.store.Append(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// released asserts that every stream let go of the hub and its tracking:
// noticed_streams_open is 0 and Wait has nothing to wait for.
func (r *rig) released(t *testing.T) {
	t.Helper()
	waitFor(t, "every stream released", func() bool {
		r.h.mu.Lock()
		defer r.h.mu.Unlock()
		return testutil.ToFloat64(r.m.StreamsOpen) == 0 && len(r.h.streams) == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.h.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// interceptWakes replaces the hub's wake-up of s with a record of it, so
// that the test calls hubWake itself, as the hub's goroutine would.
func interceptWakes(s *stream) <-chan bool {
	wakes := make(chan bool, 64)
	s.conn.OnWake(func(now bool) { wakes <- now })
	return wakes
}

func (s *stream) isRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// client reads a stream as a browser would, after its response head.
func client(t *testing.T, c net.Conn) *Reader {
	t.Helper()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response head: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("got %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return NewReader(resp.Body)
}

// expect reads the events with ids and data sizes as given.
func expect(t *testing.T, r *Reader, ids []string, size int) {
	t.Helper()
	for _, id := range ids {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("reading %s: %v", id, err)
		}
		if ev.ID != id || len(ev.Data) != size {
			t.Fatalf("got id %s with %d bytes, want %s with %d", ev.ID, len(ev.Data), id, size)
		}
	}
}

// The hand-offs of an armed stream's writing between the hub's goroutine
// (writeNow, within its budget), the stream's own pump, and the endings.
func TestPumpHandOffs(t *testing.T) {
	big := strings.Repeat("x", 32<<10)

	t.Run("the hub's goroutine writes what the socket takes, no pump", func(t *testing.T) {
		t.Parallel()
		r := newRig(64, Options{Heartbeat: time.Hour})
		defer r.close()
		srv, cli := pair(t, 0)
		s := r.serve(t, "ann", time.Time{}, srv)
		wakes := interceptWakes(s)
		rd := client(t, cli)
		ids := r.publish(t, "ann", "a", "b", "c")
		<-wakes
		s.hubWake(true)
		if runtime.GOOS == "linux" && s.isRunning() {
			t.Fatal("a pump runs after a write the socket took whole")
		}
		for i, id := range ids {
			ev, err := rd.Next()
			if err != nil || ev.ID != id || ev.Data != string(rune('a'+i)) {
				t.Fatalf("got %+v %v, want %s", ev, err, id)
			}
		}
		cli.Close()
		r.released(t)
	})

	t.Run("past the hub's budget a pump writes", func(t *testing.T) {
		t.Parallel()
		r := newRig(64, Options{Heartbeat: time.Hour})
		defer r.close()
		srv, cli := pair(t, 0)
		s := r.serve(t, "bob", time.Time{}, srv)
		wakes := interceptWakes(s)
		rd := client(t, cli)
		ids := r.publish(t, "bob", big, big)
		<-wakes
		s.hubWake(false)
		expect(t, rd, ids, len(big))
		waitFor(t, "the pump to let the stream go", func() bool { return !s.isRunning() })
		cli.Close()
		r.released(t)
	})

	t.Run("a full socket: the pump writes the rest, then what came meanwhile", func(t *testing.T) {
		t.Parallel()
		r := newRig(64, Options{Heartbeat: time.Hour})
		defer r.close()
		srv, cli := pair(t, 4096)
		s := r.serve(t, "cy", time.Time{}, srv)
		wakes := interceptWakes(s)
		ids := r.publish(t, "cy", big, big, big, big, big, big, big, big)
		<-wakes
		s.hubWake(true)
		if !s.isRunning() {
			t.Fatal("no pump took over a write the socket could not take")
		}
		more := r.publish(t, "cy", big, big)
		s.hubWake(<-wakes) // a pump runs: nothing to do here
		rd := client(t, cli)
		expect(t, rd, append(ids, more...), len(big))
		waitFor(t, "the pump to let the stream go", func() bool { return !s.isRunning() })
		cli.Close()
		r.released(t)
	})

	t.Run("an idle stream whose client leaves is released", func(t *testing.T) {
		t.Parallel()
		r := newRig(64, Options{Heartbeat: time.Hour})
		defer r.close()
		srv, cli := pair(t, 0)
		r.serve(t, "dee", time.Time{}, srv)
		client(t, cli)
		cli.Close()
		r.released(t)
	})

	t.Run("a client that leaves while its pump is blocked writing is released", func(t *testing.T) {
		t.Parallel()
		r := newRig(64, Options{Heartbeat: time.Hour})
		defer r.close()
		srv, cli := pair(t, 4096)
		s := r.serve(t, "eve", time.Time{}, srv)
		wakes := interceptWakes(s)
		r.publish(t, "eve", big, big, big, big)
		s.hubWake(<-wakes)
		waitFor(t, "a pump to hold the stream", s.isRunning)
		cli.Close()
		r.released(t)
	})

	t.Run("kicked while its pump is blocked writing", func(t *testing.T) {
		t.Parallel()
		r := newRig(4, Options{Heartbeat: time.Hour})
		defer r.close()
		srv, cli := pair(t, 4096)
		s := r.serve(t, "fay", time.Time{}, srv)
		wakes := interceptWakes(s)
		ids := r.publish(t, "fay", big, big, big, big)
		s.hubWake(<-wakes)
		waitFor(t, "a pump to hold the stream", s.isRunning)
		// Four wait in the queue, the fifth does not fit: the hub kicks
		// the stream (one wake-up) and wakes it for what it queued.
		ids = append(ids, r.publish(t, "fay", big, big, big, big, big, big)...)
		waitFor(t, "the hub to kick the stream", s.kicked)
		for len(wakes) > 0 {
			s.hubWake(<-wakes)
		}
		r.released(t)
		if n := testutil.ToFloat64(r.m.SlowClosed); n != 1 {
			t.Errorf("noticed_slow_streams_closed_total: %v, want 1", n)
		}
		// The client gets whole events, in order, then the end.
		rd := client(t, cli)
		for i := 0; ; i++ {
			ev, err := rd.Next()
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
				break
			}
			if err != nil || i >= len(ids) || ev.ID != ids[i] || len(ev.Data) != len(big) {
				t.Fatalf("event %d: got id %s, %d bytes, %v; want %s", i, ev.ID, len(ev.Data), err, ids[min(i, len(ids)-1)])
			}
		}
	})
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

// quietConn is the server end of a loopback connection whose reads wait on
// a channel of the synctest bubble rather than on the socket: a goroutine
// blocked on a socket is not durably blocked, and fake time would not move
// while the stream's watch waits for its client. Close ends the wait, as
// it ends a read on the socket.
type quietConn struct {
	*net.TCPConn
	once sync.Once
	gone chan struct{}
}

func newQuietConn(c *net.TCPConn) *quietConn {
	return &quietConn{TCPConn: c, gone: make(chan struct{})}
}

func (c *quietConn) Read([]byte) (int, error) {
	<-c.gone
	return 0, net.ErrClosed
}

func (c *quietConn) Close() error {
	c.once.Do(func() { close(c.gone) })
	return c.TCPConn.Close()
}

// transcript is what a client read from a stream until it ended: event
// ids and comments in order, and the last retry.
type transcript struct {
	lines []string
	retry int64
	err   error
}

// collect reads c's stream on a goroutine of its own, outside any bubble.
func collect(c net.Conn) <-chan transcript {
	done := make(chan transcript, 1)
	go func() {
		var tr transcript
		defer func() { done <- tr }()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			tr.err = err
			return
		}
		rd := NewReader(resp.Body)
		rd.Comments = true
		for {
			ev, err := rd.Next()
			if err != nil {
				if err != io.EOF {
					tr.err = err
				}
				tr.retry = rd.Retry()
				return
			}
			if ev.Comment {
				tr.lines = append(tr.lines, ":"+ev.Data)
			} else {
				tr.lines = append(tr.lines, ev.ID)
			}
		}
	}()
	return done
}

// What wakes an armed stream's pump on a timer: the heartbeat (a ping per
// idle interval, none after a write), the token's expiry and the hub
// closing (a short retry, then the end), in fake time.
func TestPumpTimers(t *testing.T) {
	const every = 10 * time.Second

	t.Run("heartbeat, then the token's expiry", func(t *testing.T) {
		srv, cli := pair(t, 0)
		got := collect(cli)
		var id []string
		synctest.Test(t, func(t *testing.T) {
			r := newRig(64, Options{Heartbeat: every})
			defer r.close()
			r.serve(t, "ann", time.Now().Add(4*every+every/20), newQuietConn(srv))
			// The first tick, within the first interval, finds the head
			// written and only sets the next one; that one pings.
			time.Sleep(2 * every)
			id = r.publish(t, "ann", "x")
			time.Sleep(every) // its tick finds the event written: no ping
			time.Sleep(every) // idle again: a ping
			time.Sleep(every) // past the expiry
			synctest.Wait()
			r.released(t)
		})
		tr := <-got
		want := []string{": ping", id[0], ": ping"}
		if tr.err != nil || strings.Join(tr.lines, "|") != strings.Join(want, "|") {
			t.Fatalf("client read %q (%v), want %q then the end", tr.lines, tr.err, want)
		}
		if tr.retry < 100 || tr.retry >= 2000 {
			t.Fatalf("last retry %d ms, want a short one (0.1–2 s) at the expiry", tr.retry)
		}
	})

	t.Run("the hub closing ends every stream with a short retry", func(t *testing.T) {
		srv1, cli1 := pair(t, 0)
		srv2, cli2 := pair(t, 0)
		got1, got2 := collect(cli1), collect(cli2)
		synctest.Test(t, func(t *testing.T) {
			r := newRig(64, Options{Heartbeat: every})
			defer r.close()
			r.serve(t, "bob", time.Time{}, newQuietConn(srv1))
			r.serve(t, "cy", time.Time{}, newQuietConn(srv2))
			time.Sleep(every / 2)
			r.hub.Close()
			synctest.Wait()
			r.released(t)
		})
		for _, got := range []<-chan transcript{got1, got2} {
			tr := <-got
			if tr.err != nil || len(tr.lines) != 0 || tr.retry < 100 || tr.retry >= 2000 {
				t.Fatalf("client read %q, last retry %d ms (%v); want nothing, then a short retry (0.1–2 s) and the end", tr.lines, tr.retry, tr.err)
			}
		}
	})
}
