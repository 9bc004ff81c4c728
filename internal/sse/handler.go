// This file holds the request side: the Handler and its Options, and Serve,
// which reads the replay position, subscribes to the hub, takes the
// connection over and sends the headers (open), and hands the stream to
// replay (replay.go), then to the pump (pump.go). It is kept apart from the
// writing so that what a request may get back (an error, a come-back-soon
// answer, a stream) can be read in one place.

package sse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/noticed/noticed/internal/metrics"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// Options tune the stream handler; zero values take the defaults.
type Options struct {
	Heartbeat    time.Duration // comment line on idle streams; default 15s
	WriteTimeout time.Duration // deadline on each write; default 10s
	Metrics      *metrics.Metrics
	Logger       *slog.Logger

	// ownWatch gives each stream a goroutine of its own to wait for its
	// client (watch) rather than the Handler's epoll (leaveWatch): for
	// tests in a synctest bubble, where a goroutine waiting on epoll is
	// not durably blocked.
	ownWatch bool
}

const (
	// retryBase is the reconnection delay a stream starts with; up to
	// half of it again is added at random so that the streams of a lost
	// instance do not all come back in the same millisecond.
	retryBase = 2 * time.Second
	// startWait is how long a new stream waits for the backend before its
	// headers are sent anyway (a browser gives up on anything but 200).
	startWait = 2 * time.Second
	// replayBatch is how many entries one replay read takes.
	replayBatch = 500
)

// Request errors, returned before anything is written.
var (
	ErrBadLastEventID = errors.New("malformed last event id")
	// ErrRequestBody is a stream request that declares a body. Past its
	// head, a stream's connection carries nothing from the client: a body
	// would be taken for input on the stream and close it, with no answer
	// if it came with the head.
	ErrRequestBody = errors.New("an event stream request has no body: send no Content-Length or Transfer-Encoding")
	// ErrNotHijackable is a server that cannot hand the connection over
	// (HTTP/2, a response writer that hides Hijack): a stream needs its
	// connection, TLS and HTTP/2 ending at a proxy in front.
	ErrNotHijackable = errors.New("event streams need a connection the server can hand over (plain HTTP/1.x)")
)

// Handler serves users' event streams from a hub and the store behind it.
type Handler struct {
	hub   *routing.Hub
	store routing.Store
	opts  Options
	m     *metrics.Metrics
	log   *slog.Logger

	// Hijacked streams, so that shutting down reaches them.
	mu       sync.Mutex
	streams  map[*stream]struct{}
	empty    chan struct{} // closed when streams becomes empty, if waited on
	watching sync.Once
	// leave waits for clients to leave (set once by leaveOnce; nil where
	// there is no epoll).
	leaveOnce sync.Once
	leave     *leaveWatch
}

// NewHandler makes a stream handler.
func NewHandler(hub *routing.Hub, store routing.Store, opts Options) *Handler {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.Discard()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{hub: hub, store: store, opts: opts, m: opts.Metrics, log: opts.Logger,
		streams: make(map[*stream]struct{})}
}

// LastEventID reads the replay position: the Last-Event-ID header (sent by
// a reconnecting EventSource) beats the lastEventId query parameter (set by
// a page that kept the id). ok is false when neither is given.
func LastEventID(r *http.Request) (id notice.ID, ok bool, err error) {
	text, source := r.Header.Get("Last-Event-ID"), "the Last-Event-ID header"
	if text == "" {
		text, source = r.URL.Query().Get("lastEventId"), "the lastEventId query parameter"
	}
	if text == "" {
		return notice.Zero, false, nil
	}
	id, err = notice.ParseID(text)
	if err != nil {
		return notice.Zero, false, fmt.Errorf("%w: %s must be <ms>-<seq> or <ms>", ErrBadLastEventID, source)
	}
	return id, true, nil
}

// Serve streams user's events until the client leaves, the token expires
// at expires (zero: never), the stream falls behind, or the hub closes.
// It returns an error only when it has written nothing, for the caller to
// answer with a status.
//
// The connection is taken over (hijacked) when the headers are sent, and
// Serve returns once the replay is done: a live stream then costs a
// goroutine waiting for the client to leave and no more, and a pump
// goroutine runs only while there is something to write (see pump.go).
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, user string, expires time.Time) error {
	if r.ContentLength != 0 { // -1: chunked
		return ErrRequestBody
	}
	from, replay, err := LastEventID(r)
	if err != nil {
		return err
	}
	conn, err := h.hub.Subscribe(user)
	if errors.Is(err, routing.ErrClosed) {
		h.comeBackSoon(w)
		return nil
	}
	if err != nil {
		return err
	}
	h.m.StreamsOpened.Inc()
	s := &stream{h: h, conn: conn, ctx: r.Context(), expires: expires, running: true}
	s.beat.every = h.opts.Heartbeat

	// Wait briefly for the hub to follow the user, so that the headers mean
	// "every entry from now on will arrive"; past that, send them anyway
	// and keep the stream waiting for the backend with heartbeats.
	waitCtx, cancel := context.WithTimeout(r.Context(), startWait)
	start, startErr := conn.Start(waitCtx)
	cancel()
	if errors.Is(startErr, routing.ErrClosed) {
		s.finish()
		h.comeBackSoon(w)
		return nil
	}
	if r.Context().Err() != nil {
		s.finish()
		return nil
	}
	taken, err := s.hijack(w)
	if err != nil {
		s.finish()
		h.log.Error("stream refused: the server cannot hand its connection over", "proto", r.Proto, "err", err)
		return err
	}
	// When the backend has answered, the head goes out with what follows
	// it in one write; otherwise at once, so that onopen fires.
	if !taken || !s.open(w.Header(), startErr != nil) || !s.begin(start, startErr, from, replay) {
		s.finish()
		return nil
	}
	s.arm()
	return nil
}

// comeBackSoon answers a stream that arrives while this instance shuts
// down: a browser gives up for good on any status but 200, so it gets a
// 200 that only says to reconnect soon (through the balancer, to another
// instance), at a random moment within two seconds.
func (h *Handler) comeBackSoon(w http.ResponseWriter) {
	hdr := w.Header()
	setStreamHeaders(hdr)
	hdr.Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(AppendRetry(nil, jitter(100*time.Millisecond, 1900*time.Millisecond).Milliseconds()))
}

// hijack takes the connection over from the server; nothing has been
// written when it fails. false, with no error, when the client sent
// something right behind its request: input, as watch sees it once the
// stream is open, so the connection is closed and counted.
func (s *stream) hijack(w http.ResponseWriter) (bool, error) {
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrNotHijackable, err)
	}
	if rw != nil && rw.Reader.Buffered() > 0 {
		s.h.m.StreamsRefused.WithLabelValues(clientInput).Inc()
		_ = nc.Close()
		return false, nil
	}
	_ = nc.SetDeadline(time.Time{})
	s.nc = nc
	if sc, ok := nc.(syscall.Conn); ok {
		s.raw, _ = sc.SyscallConn()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.h.track(s)
	s.h.watchLeave(s)
	return true, nil
}

// open puts the response head and the first retry field in the buffer,
// and writes them at once when flushNow; false when the client is gone.
func (s *stream) open(hdr http.Header, flushNow bool) bool {
	setStreamHeaders(hdr)
	hdr.Set("Connection", "close") // the body ends when the connection does
	s.buf = appendHead(s.buf, hdr)
	s.buf = AppendRetry(s.buf, jitter(retryBase, retryBase/2).Milliseconds())
	return !flushNow || s.flush()
}

// setStreamHeaders sets the headers every event stream is sent with.
func setStreamHeaders(hdr http.Header) {
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx: pass each event at once
}

// appendHead appends an HTTP/1.1 200 response head with hdr's fields.
func appendHead(dst []byte, hdr http.Header) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(&b) // sanitises CR and LF in values
	b.WriteString("\r\n")
	return append(dst, b.Bytes()...)
}

// jitter returns base plus a random duration up to spread.
func jitter(base, spread time.Duration) time.Duration {
	if spread <= 0 {
		return base
	}
	return base + rand.N(spread)
}
