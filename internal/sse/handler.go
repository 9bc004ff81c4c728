package sse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
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
	// Retry is the reconnection delay a stream starts with; up to half of
	// it again is added at random so that the streams of a lost instance
	// do not all come back in the same millisecond. Default 2s.
	Retry time.Duration
	// StartWait is how long a new stream waits for the backend before its
	// headers are sent anyway (a browser gives up on anything but 200).
	// Default 2s.
	StartWait   time.Duration
	ReplayBatch int // entries per replay read; default 500
	Metrics     *metrics.Metrics
	Logger      *slog.Logger
	// NoHijack keeps every stream on net/http's response writer (for
	// comparison; it costs about three times the memory per stream).
	NoHijack bool
}

// Request errors, returned before anything is written.
var ErrBadLastEventID = errors.New("malformed last event id")

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
}

// NewHandler makes a stream handler.
func NewHandler(hub *routing.Hub, store routing.Store, opts Options) *Handler {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.Retry <= 0 {
		opts.Retry = 2 * time.Second
	}
	if opts.StartWait <= 0 {
		opts.StartWait = 2 * time.Second
	}
	if opts.ReplayBatch <= 0 {
		opts.ReplayBatch = 500
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
// Over HTTP/1.x the connection is taken over (hijacked) when the headers
// are sent, and Serve returns once the replay is done: a live stream then
// costs a goroutine waiting for the client to leave and no more, and a
// short-lived one writes whenever there is something to send (see pump).
// Over HTTP/2, or where the writer cannot be hijacked, Serve runs the
// stream to its end on the request goroutine.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, user string, expires time.Time) error {
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

	// Wait briefly for the hub to follow the user, so that the headers mean
	// "every entry from now on will arrive"; past that, send them anyway
	// and keep the stream waiting for the backend with heartbeats.
	waitCtx, cancel := context.WithTimeout(r.Context(), h.opts.StartWait)
	start, startErr := conn.Start(waitCtx)
	cancel()
	if errors.Is(startErr, routing.ErrClosed) {
		s.finish()
		h.comeBackSoon(w)
		return nil
	}
	// When the backend has answered, the head goes out with what follows
	// it in one write; otherwise at once, so that onopen fires.
	if r.Context().Err() != nil || !s.open(w, r, startErr != nil) {
		s.finish()
		return nil
	}
	if !s.begin(start, startErr, from, replay) {
		s.finish()
		return nil
	}
	if s.nc != nil {
		s.arm()
		return nil
	}
	s.live()
	s.finish()
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

// open sends the response headers and the first retry field, taking the
// connection over when it can; false when the client is gone.
func (s *stream) open(w http.ResponseWriter, r *http.Request, flushNow bool) bool {
	hdr := w.Header()
	setStreamHeaders(hdr)
	retry := jitter(s.h.opts.Retry, s.h.opts.Retry/2).Milliseconds()
	if r.ProtoMajor == 1 && !s.h.opts.NoHijack {
		if nc, _, err := http.NewResponseController(w).Hijack(); err == nil {
			// Bytes the client sent past its request are of no use to a
			// stream; what net/http buffered of them is dropped with it.
			_ = nc.SetDeadline(time.Time{})
			s.nc = nc
			if sc, ok := nc.(syscall.Conn); ok {
				s.raw, _ = sc.SyscallConn()
			}
			s.ctx, s.cancel = context.WithCancel(context.Background())
			s.h.track(s)
			go s.watch()
			hdr.Set("Connection", "close") // the body ends when the connection does
			s.buf = appendHead(s.buf, hdr)
			s.buf = AppendRetry(s.buf, retry)
			return !flushNow || s.flush()
		}
	}
	hdr.Set("Connection", "keep-alive")
	s.w = w
	s.rc = http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	s.buf = AppendRetry(s.buf, retry)
	return s.flush()
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

// begin waits for the backend if it has not answered yet, then replays
// what the client missed or gives it the position it starts from; false
// when the stream must end.
func (s *stream) begin(start notice.ID, startErr error, from notice.ID, replay bool) bool {
	if startErr != nil {
		headersAt := time.Now()
		if !s.idle(s.conn.Ready(), nil) {
			return false
		}
		var err error
		if start, err = s.conn.Start(s.ctx); err != nil {
			s.end()
			return false
		}
		if !replay {
			// The headers went out before the backend answered, so entries
			// added since then are this stream's, though they may be older
			// than start. Redis ids are its clock's milliseconds: replay
			// from a little before the headers (clock skew), never
			// announcing a gap the client did not ask about.
			since := notice.ID{Ms: uint64(max(headersAt.Add(-skewMargin).UnixMilli(), 0))}
			if since.Less(start) {
				s.lastSent = since
				if !s.replayFrom(since, start, false) {
					return false
				}
				if s.lastSent != since {
					return true // the browser holds a real id
				}
			}
		}
	}
	s.lastSent = start
	if replay {
		s.lastSent = from
		return s.replay(from, start)
	}
	// Give the browser an id before any event: should the stream drop
	// before the first one, it comes back with Last-Event-ID and gets what
	// was published meanwhile instead of starting afresh.
	s.buf = AppendPosition(s.buf, start)
	return s.flush()
}

// stream is one response being written. Until it is armed, only its
// request goroutine touches it; after, only its pump does.
type stream struct {
	h        *Handler
	conn     *routing.Conn
	ctx      context.Context
	buf      []byte
	lastSent notice.ID
	wrote    atomic.Bool // since the last heartbeat tick
	expires  time.Time

	// Used while the request goroutine serves the stream.
	ticker      *time.Ticker
	expiryTimer *time.Timer
	expiry      <-chan time.Time

	// Stock path: the response writer.
	w  http.ResponseWriter
	rc *http.ResponseController

	// Hijacked path: the connection, and what wakes the pump.
	nc     net.Conn
	raw    syscall.RawConn // nc's, for writes that must not block; nil if it has none
	held   *batch          // what a write on the hub's goroutine left for the pump
	heldN  int             // events in held
	cancel context.CancelFunc
	hb     *time.Timer // heartbeat, once armed
	exp    *time.Timer // token expiry, once armed

	mu      sync.Mutex
	pend    uint8 // wake reasons not yet handled
	running bool  // a goroutine owns the stream's writing
	done    bool
}

// Wake reasons.
const (
	wakeTick = 1 << iota // heartbeat due
	wakeEnd              // token expired or shutting down: say retry, close
	wakeGone             // the client left or was kicked: close
)

// flush writes the buffer under a deadline; false when the client is gone.
func (s *stream) flush() bool {
	if len(s.buf) == 0 {
		return true
	}
	one := [1][]byte{s.buf}
	err := s.write(one[:])
	if cap(s.buf) > maxKeptBuffer {
		s.buf = make([]byte, 0, 512) // a large replay should not pin memory
	} else {
		s.buf = s.buf[:0]
	}
	return s.written(err)
}

// flushBatch writes a batch; false when the client is gone.
func (s *stream) flushBatch(b *batch) bool {
	v := b.buffers()
	if len(v) == 0 {
		return true
	}
	return s.written(s.write(v))
}

// write sends v under a deadline that covers this write only: writes on
// the hub's goroutine never wait, and would fail on a deadline left
// behind once it passed; HTTP/2 resets a stream whose deadline passes
// even while it is idle. A taken-over connection gets v in one writev.
func (s *stream) write(v net.Buffers) error {
	var err error
	if s.nc != nil {
		_ = s.nc.SetWriteDeadline(time.Now().Add(s.h.opts.WriteTimeout))
		_, err = v.WriteTo(s.nc)
		_ = s.nc.SetWriteDeadline(time.Time{})
		return err
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.h.opts.WriteTimeout))
	for _, p := range v {
		if _, err = s.w.Write(p); err != nil {
			break
		}
	}
	if err == nil {
		err = s.rc.Flush()
	}
	_ = s.rc.SetWriteDeadline(time.Time{})
	return err
}

// written records a write's outcome; false when the client is gone.
func (s *stream) written(err error) bool {
	s.wrote.Store(true)
	if err != nil {
		// A client that stopped reading until the write deadline passed is
		// slow, like one that fell a queue behind.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.h.m.SlowClosed.Inc()
		}
		return false
	}
	return true
}

// clock starts the heartbeat ticker and the token's expiry timer for the
// request goroutine's selects, once.
func (s *stream) clock() {
	if s.ticker == nil {
		s.ticker = time.NewTicker(s.h.opts.Heartbeat)
	}
	if s.expiryTimer == nil && !s.expires.IsZero() {
		s.expiryTimer = time.NewTimer(time.Until(s.expires))
		s.expiry = s.expiryTimer.C
	}
}

// idle serves heartbeats until until is closed (true) or the stream must
// end (false). A nil until never closes; a non-nil after ends the wait
// with true too.
func (s *stream) idle(until <-chan struct{}, after <-chan time.Time) bool {
	s.clock()
	if len(s.buf) > 0 && !s.flush() { // the head, when it waited
		return false
	}
	for {
		select {
		case <-until:
			return true
		case <-after:
			return true
		case <-s.ctx.Done():
			return false
		case <-s.conn.Kicked():
			return false
		case <-s.h.hub.Closing():
			s.end()
			return false
		case <-s.expiry:
			s.end()
			return false
		case <-s.ticker.C:
			if !s.heartbeat() {
				return false
			}
		}
	}
}

func (s *stream) heartbeat() bool {
	if s.wrote.Swap(false) {
		return true
	}
	s.buf = append(s.buf, Ping...)
	ok := s.flush()
	s.wrote.Store(false)
	return ok
}

// end tells the browser to come back soon, at a random moment within a few
// seconds, so that a draining instance's streams spread over the others.
func (s *stream) end() {
	s.buf = AppendRetry(s.buf, jitter(100*time.Millisecond, 1900*time.Millisecond).Milliseconds())
	s.flush()
}

// replay sends the retained entries after from, up to at least upTo, with
// a gap event first when some after from may have been lost. It retries
// while the store does not answer; false when the stream must end.
func (s *stream) replay(from, upTo notice.ID) bool {
	return s.replayFrom(from, upTo, true)
}

// skewMargin is how far before its headers a stream opened during an
// outage replays from, for clocks of noticed and Redis that disagree.
const skewMargin = 2 * time.Second

// replayFrom is replay, with the gap check optional.
func (s *stream) replayFrom(from, upTo notice.ID, checkGap bool) bool {
	after, first := from, true
	backoff := 50 * time.Millisecond
	for first || after.Less(upTo) {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		batches, err := s.h.store.Read(ctx, []routing.Cursor{{
			User: s.conn.User(), After: after, Count: s.h.opts.ReplayBatch, CheckGap: first && checkGap,
		}})
		cancel()
		if err != nil {
			if s.ctx.Err() != nil {
				return false
			}
			s.h.m.BackendErrors.WithLabelValues("replay").Inc()
			s.h.log.Warn("replay read failed; retrying", "err", err)
			if !s.idle(nil, time.After(backoff)) {
				return false
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		b := batches[0]
		if first && b.Gap {
			s.buf = AppendGap(s.buf, from)
			s.h.m.GapsSent.Inc()
		}
		first = false
		for _, e := range b.Entries {
			s.buf = AppendEntry(s.buf, e)
			after = e.ID
			if len(s.buf) >= maxKeptBuffer/2 && !s.flush() {
				return false
			}
		}
		if !s.flush() {
			return false
		}
		s.h.m.EventsReplayed.Add(float64(len(b.Entries)))
		s.h.m.EventsDelivered.Add(float64(len(b.Entries)))
		if s.lastSent.Less(after) {
			s.lastSent = after
		}
		if len(b.Entries) < s.h.opts.ReplayBatch {
			break
		}
	}
	return true
}

// maxKeptBuffer is the largest write buffer a stream keeps between writes.
const maxKeptBuffer = 64 << 10

// maxCoalesce bounds how many queued frames one write carries.
const maxCoalesce = 64

// live writes the hub's frames as they come, several per write when the
// stream is behind, skipping what replay already sent.
func (s *stream) live() {
	s.clock()
	frames := s.conn.Frames()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.conn.Kicked():
			return
		case <-s.h.hub.Closing():
			s.end()
			return
		case <-s.expiry:
			s.end()
			return
		case <-s.ticker.C:
			if !s.heartbeat() {
				return
			}
		case f := <-frames:
			b := getBatch()
			n := s.addTo(b, f)
		more:
			for range maxCoalesce - 1 {
				select {
				case f = <-frames:
					n += s.addTo(b, f)
				default:
					break more
				}
			}
			ok := s.flushBatch(b)
			putBatch(b)
			if !ok {
				return
			}
			s.h.m.EventsDelivered.Add(float64(n))
		}
	}
}

// addTo adds what frame f means for the stream to b: a gap announcement,
// the event (large frames by reference), or nothing when it was sent
// already. It returns the events added.
func (s *stream) addTo(b *batch, f *routing.Frame) int {
	if f.Gap {
		b.small = AppendGap(b.small, s.lastSent)
		s.h.m.GapsSent.Inc()
		return 0
	}
	if !s.lastSent.Less(f.ID) {
		return 0
	}
	s.lastSent = f.ID
	b.add(f.Bytes)
	return 1
}

// jitter returns base plus a random duration up to spread.
func jitter(base, spread time.Duration) time.Duration {
	if spread <= 0 {
		return base
	}
	return base + rand.N(spread)
}

// finish releases the stream: it leaves the hub, stops its timers and, if
// it was hijacked, closes the connection.
func (s *stream) finish() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.h.hub.Unsubscribe(s.conn)
	if s.ticker != nil {
		s.ticker.Stop()
	}
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
	}
	if s.hb != nil {
		s.hb.Stop()
	}
	if s.exp != nil {
		s.exp.Stop()
	}
	if s.nc != nil {
		_ = s.nc.Close()
		s.cancel()
		s.h.untrack(s)
	}
	s.buf = nil
	s.held = nil
}

// watch waits for the client of a hijacked stream to leave. It is the one
// goroutine a live stream keeps.
func (s *stream) watch() {
	var b [16]byte
	for {
		if _, err := s.nc.Read(b[:]); err != nil {
			break
		}
	}
	s.cancel()
	s.wake(wakeGone)
}

// arm hands a hijacked stream over from its request goroutine to timers
// and the hub: from now on a pump goroutine runs only while there is
// something to write.
func (s *stream) arm() {
	if s.ticker != nil {
		s.ticker.Stop()
		s.ticker = nil
	}
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
		s.expiryTimer, s.expiry = nil, nil
	}
	s.buf = nil
	// The first tick comes at a random moment within one interval, so that
	// streams opened together (a deploy, a reconnect storm) do not tick
	// together for ever after: ten thousand heartbeats in the same second
	// showed in every event's latency that second. No stream goes longer
	// than the interval without a write.
	s.hb = time.AfterFunc(time.Hour, s.tick)
	s.hb.Reset(jitter(s.h.opts.Heartbeat/10, s.h.opts.Heartbeat*9/10))
	if !s.expires.IsZero() {
		s.exp = time.AfterFunc(time.Until(s.expires), func() { s.wake(wakeEnd) })
	}
	s.conn.OnWake(s.hubWake)
	select {
	case <-s.h.hub.Closing():
		s.mu.Lock()
		s.pend |= wakeEnd
		s.mu.Unlock()
	default:
	}
	s.release()
}

// release ends its caller's hold on the stream's writing (running): the
// stream is let go when nothing waits, or handed to a pump.
func (s *stream) release() {
	s.mu.Lock()
	if s.pend == 0 && s.held == nil && s.conn.Queued() == 0 && !s.kicked() {
		s.running = false
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	go s.pump()
}

// tick is the heartbeat timer's: a stream that wrote since the last tick
// needs no ping, and is not woken for it.
func (s *stream) tick() {
	if s.wrote.Swap(false) {
		s.hb.Reset(s.h.opts.Heartbeat)
		return
	}
	s.wake(wakeTick)
}

func (s *stream) kicked() bool {
	select {
	case <-s.conn.Kicked():
		return true
	default:
		return false
	}
}

// hubWake is called by the hub after it queued frames on the stream or
// kicked it. When now is set and the stream has nothing else to do, it
// writes the frames at once, on the hub's goroutine, as far as the socket
// takes them without blocking: no goroutine is started and scheduled per
// event. A pump takes over what the socket did not take, any other work,
// and the writes the hub has no time for.
func (s *stream) hubWake(now bool) {
	if s.kicked() {
		s.wake(wakeGone)
		return
	}
	s.mu.Lock()
	if s.done || s.running {
		s.mu.Unlock()
		return // a running pump sees the queue before it stops
	}
	s.running = true
	now = now && s.pend == 0 && s.raw != nil
	s.mu.Unlock()
	if now {
		s.writeNow()
	}
	s.release()
}

// writeNow writes what is queued without blocking. What the socket did
// not take is held for the pump, which writes it before anything else.
func (s *stream) writeNow() {
	b := getBatch()
	delivered := 0
	frames := s.conn.Frames()
	for range min(s.conn.Queued(), maxCoalesce) {
		delivered += s.addTo(b, <-frames)
	}
	v := b.buffers()
	total := 0
	for _, p := range v {
		total += len(p)
	}
	if total == 0 {
		putBatch(b)
		return
	}
	n, err := writeNonBlocking(s.raw, v)
	switch {
	case err == nil && n == total:
		putBatch(b)
		s.wrote.Store(true)
		s.h.m.EventsDelivered.Add(float64(delivered))
	case err == nil || errors.Is(err, errWouldBlock):
		if n > 0 {
			s.wrote.Store(true)
		}
		b.vec = consume(b.vec, n)
		s.held, s.heldN = b, delivered
	default: // the client is gone
		putBatch(b)
		s.mu.Lock()
		s.pend |= wakeGone
		s.mu.Unlock()
	}
}

// consume drops the first n bytes of v.
func consume(v net.Buffers, n int) net.Buffers {
	for len(v) > 0 && n >= len(v[0]) {
		n -= len(v[0])
		v[0] = nil
		v = v[1:]
	}
	if len(v) > 0 {
		v[0] = v[0][n:]
	}
	return v
}

// wake makes sure a pump handles the stream's queue and reasons. A client
// that left or was kicked has its connection closed at once, so that a
// pump blocked writing to it returns.
func (s *stream) wake(reason uint8) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.pend |= reason
	if s.running {
		s.mu.Unlock()
		if reason&wakeGone != 0 && s.nc != nil {
			_ = s.nc.Close()
		}
		return
	}
	s.running = true
	s.mu.Unlock()
	go s.pump()
}

// pump writes what is queued, coalescing frames, and handles heartbeats
// and endings; it returns when there is nothing left to do.
func (s *stream) pump() {
	for {
		s.mu.Lock()
		reason := s.pend
		s.pend = 0
		if reason == 0 && s.held == nil && s.conn.Queued() == 0 && !s.kicked() {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if reason&wakeGone != 0 || s.kicked() {
			s.finish()
			return
		}
		if b := s.held; b != nil {
			// The rest of a write the hub's goroutine began: first, so that
			// no frame is split by another.
			s.held = nil
			ok := s.flushBatch(b)
			putBatch(b)
			if !ok {
				s.finish()
				return
			}
			s.h.m.EventsDelivered.Add(float64(s.heldN))
		}
		if reason&wakeEnd != 0 {
			s.end()
			s.finish()
			return
		}
		if n := s.conn.Queued(); n > 0 {
			b := getBatch()
			delivered := 0
			frames := s.conn.Frames()
			for range min(n, maxCoalesce) {
				delivered += s.addTo(b, <-frames)
			}
			ok := s.flushBatch(b)
			putBatch(b)
			if !ok {
				s.finish()
				return
			}
			s.h.m.EventsDelivered.Add(float64(delivered))
		}
		if reason&wakeTick != 0 {
			if !s.wrote.Load() {
				b := getBatch()
				b.small = append(b.small, Ping...)
				ok := s.flushBatch(b)
				putBatch(b)
				if !ok {
					s.finish()
					return
				}
			}
			s.wrote.Store(false)
			s.hb.Reset(s.h.opts.Heartbeat)
		}
	}
}

// copyBelow is the size under which a frame is copied into a batch's
// buffer; larger frames are written from where the hub keeps them, so a
// stream that stops reading holds references to its queue, not a copy.
const copyBelow = 1 << 10

// batch is one write of the pump: runs of small frames copied together,
// large frames referenced, all sent with one writev.
type batch struct {
	small []byte
	mark  int // small[:mark] is already in vec
	vec   net.Buffers
}

func (b *batch) add(p []byte) {
	if len(p) < copyBelow {
		b.small = append(b.small, p...)
		return
	}
	b.cut()
	b.vec = append(b.vec, p)
}

// cut ends the current run of small frames.
func (b *batch) cut() {
	if len(b.small) > b.mark {
		b.vec = append(b.vec, b.small[b.mark:len(b.small):len(b.small)])
		b.mark = len(b.small)
	}
}

// buffers returns what the batch writes. Appending to small after cut
// never moves bytes an earlier run refers to: a grown buffer is a copy.
func (b *batch) buffers() net.Buffers {
	b.cut()
	return b.vec
}

var batchPool = sync.Pool{New: func() any { return &batch{small: make([]byte, 0, 4096)} }}

func getBatch() *batch { return batchPool.Get().(*batch) }

func putBatch(b *batch) {
	if cap(b.small) > maxKeptBuffer {
		b.small = make([]byte, 0, 4096)
	}
	b.small, b.mark = b.small[:0], 0
	clear(b.vec[:cap(b.vec)]) // the frames go back to the hub's care
	b.vec = b.vec[:0]
	batchPool.Put(b)
}

// track registers a hijacked stream; the first one starts the watch for
// the hub closing, which tells every tracked stream to end.
func (h *Handler) track(s *stream) {
	h.mu.Lock()
	h.streams[s] = struct{}{}
	h.mu.Unlock()
	h.watching.Do(func() {
		go func() {
			<-h.hub.Closing()
			h.mu.Lock()
			all := make([]*stream, 0, len(h.streams))
			for s := range h.streams {
				all = append(all, s)
			}
			h.mu.Unlock()
			for _, s := range all {
				s.wake(wakeEnd)
			}
		}()
	})
}

func (h *Handler) untrack(s *stream) {
	h.mu.Lock()
	delete(h.streams, s)
	if len(h.streams) == 0 && h.empty != nil {
		close(h.empty)
		h.empty = nil
	}
	h.mu.Unlock()
}

// Wait waits until every hijacked stream has closed (after the hub closed,
// each says retry and closes), or ctx ends; then it closes what is left.
// net/http's Shutdown does not wait for hijacked connections: call Wait
// after it.
func (h *Handler) Wait(ctx context.Context) error {
	h.mu.Lock()
	if len(h.streams) == 0 {
		h.mu.Unlock()
		return nil
	}
	if h.empty == nil {
		h.empty = make(chan struct{})
	}
	empty := h.empty
	h.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
	}
	h.mu.Lock()
	for s := range h.streams {
		_ = s.nc.Close()
	}
	h.mu.Unlock()
	return ctx.Err()
}
