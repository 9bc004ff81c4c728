package sse

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
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
}

// Request errors, returned before anything is written.
var ErrBadLastEventID = errors.New("malformed Last-Event-ID: want <ms>-<seq>")

// Handler serves users' event streams from a hub and the store behind it.
type Handler struct {
	hub   *routing.Hub
	store routing.Store
	opts  Options
	m     *metrics.Metrics
	log   *slog.Logger
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
	return &Handler{hub: hub, store: store, opts: opts, m: opts.Metrics, log: opts.Logger}
}

// LastEventID reads the replay position: the Last-Event-ID header (sent by
// a reconnecting EventSource) beats the lastEventId query parameter (set by
// a page that kept the id). ok is false when neither is given.
func LastEventID(r *http.Request) (id notice.ID, ok bool, err error) {
	text := r.Header.Get("Last-Event-ID")
	if text == "" {
		text = r.URL.Query().Get("lastEventId")
	}
	if text == "" {
		return notice.Zero, false, nil
	}
	id, err = notice.ParseID(text)
	if err != nil {
		return notice.Zero, false, ErrBadLastEventID
	}
	return id, true, nil
}

// Serve streams user's events until the client leaves, the token expires
// at expires (zero: never), the stream falls behind, or the hub closes.
// It returns an error only when it has written nothing, for the caller to
// answer with a status.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, user string, expires time.Time) error {
	from, replay, err := LastEventID(r)
	if err != nil {
		return err
	}
	conn, err := h.hub.Subscribe(user)
	if err != nil {
		return err
	}
	defer h.hub.Unsubscribe(conn)
	h.m.StreamsOpened.Inc()

	ctx := r.Context()
	s := &stream{h: h, w: w, rc: http.NewResponseController(w), conn: conn, ctx: ctx, buf: make([]byte, 0, 512)}
	if !expires.IsZero() {
		t := time.NewTimer(time.Until(expires))
		defer t.Stop()
		s.expiry = t.C
	}

	// Wait briefly for the hub to follow the user, so that the headers mean
	// "every entry from now on will arrive"; past that, send them anyway
	// and keep the stream waiting for the backend with heartbeats.
	waitCtx, cancel := context.WithTimeout(ctx, h.opts.StartWait)
	start, startErr := conn.Start(waitCtx)
	cancel()
	if errors.Is(startErr, routing.ErrClosed) {
		return startErr
	}
	if ctx.Err() != nil {
		return nil
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	hdr.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	s.buf = AppendRetry(s.buf, jitter(h.opts.Retry, h.opts.Retry/2).Milliseconds())
	if !s.flush() {
		return nil
	}
	s.ticker = time.NewTicker(h.opts.Heartbeat)
	defer s.ticker.Stop()

	if startErr != nil {
		if !s.idle(conn.Ready(), nil) {
			return nil
		}
		if start, err = conn.Start(ctx); err != nil {
			s.end()
			return nil
		}
	}
	s.lastSent = start
	if replay {
		s.lastSent = from
		if !s.replay(from, start) {
			return nil
		}
	} else {
		// Give the browser an id before any event: should the stream drop
		// before the first one, it comes back with Last-Event-ID and gets
		// what was published meanwhile instead of starting afresh.
		s.buf = AppendPosition(s.buf, start)
		if !s.flush() {
			return nil
		}
	}
	s.live()
	return nil
}

// stream is one response being written; only its request goroutine
// touches it.
type stream struct {
	h        *Handler
	w        http.ResponseWriter
	rc       *http.ResponseController
	conn     *routing.Conn
	ctx      context.Context
	buf      []byte
	lastSent notice.ID
	ticker   *time.Ticker
	expiry   <-chan time.Time
	wrote    bool // since the last heartbeat tick
}

// flush writes the buffer under a deadline; false when the client is gone.
func (s *stream) flush() bool {
	if len(s.buf) == 0 {
		return true
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.h.opts.WriteTimeout))
	_, err := s.w.Write(s.buf)
	if err == nil {
		err = s.rc.Flush()
	}
	if cap(s.buf) > maxKeptBuffer {
		s.buf = make([]byte, 0, 512) // a large replay should not pin memory
	} else {
		s.buf = s.buf[:0]
	}
	s.wrote = true
	return err == nil
}

// idle serves heartbeats until until is closed (true) or the stream must
// end (false). A nil until never closes; a non-nil after ends the wait
// with true too.
func (s *stream) idle(until <-chan struct{}, after <-chan time.Time) bool {
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
	if s.wrote {
		s.wrote = false
		return true
	}
	s.buf = append(s.buf, Ping...)
	ok := s.flush()
	s.wrote = false
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
	after, first := from, true
	backoff := 50 * time.Millisecond
	for first || after.Less(upTo) {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		batches, err := s.h.store.Read(ctx, []routing.Cursor{{
			User: s.conn.User(), After: after, Count: s.h.opts.ReplayBatch, CheckGap: first,
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
			n := s.add(f)
		more:
			for range maxCoalesce - 1 {
				select {
				case f = <-frames:
					n += s.add(f)
				default:
					break more
				}
			}
			if !s.flush() {
				return
			}
			s.h.m.EventsDelivered.Add(float64(n))
		}
	}
}

func (s *stream) add(f *routing.Frame) int {
	if !s.lastSent.Less(f.ID) {
		return 0
	}
	s.lastSent = f.ID
	s.buf = append(s.buf, f.Bytes...)
	return 1
}

// jitter returns base plus a random duration up to spread.
func jitter(base, spread time.Duration) time.Duration {
	if spread <= 0 {
		return base
	}
	return base + rand.N(spread)
}
