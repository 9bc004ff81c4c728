// Package front is noticed's TCP front door. It accepts every connection
// itself and looks at the first request line: a new event stream (GET on
// the stream path over HTTP/1.x, what browsers and nginx send) is parsed
// with net/http's own parser and served here, through the same handler as
// everything else; any other connection goes on to net/http untouched,
// the bytes already read included.
//
// Why: an event stream over HTTP/1.x is taken over from net/http after its
// headers, and what net/http set up for the connection (a 4 KiB read
// buffer, a 4 KiB write buffer, its connection state and contexts) is then
// garbage, one lot per stream opened. Opening streams is noticed's busiest
// moment (a reconnect storm, a deploy), and that garbage was a third of
// the bytes allocated per open. Here a stream borrows a pooled read
// buffer for its request head and gives it back before it goes live.
package front

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/noticed/noticed/internal/retry"
)

// Options configure a Listener. They mirror the http.Server's limits, so a
// stream request meets the same ones whichever path serves it.
type Options struct {
	// Path is the stream endpoint, e.g. "/notice": "GET <Path>" and
	// "GET <Path>?..." are served here.
	Path string
	// Handler serves the stream requests (the whole router, middleware
	// included).
	Handler http.Handler
	// ReadHeaderTimeout bounds the time to read a request head; 0: none.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request head, as http.Server's field does
	// (0: http.DefaultMaxHeaderBytes); past it the answer is 431.
	MaxHeaderBytes int
	Logger         *slog.Logger
}

// Listener is a net.Listener for an http.Server: Accept returns the
// connections that are not stream requests.
type Listener struct {
	ln     net.Listener
	opts   Options
	prefix string // "GET " + opts.Path

	conns     chan net.Conn // for net/http
	done      chan struct{}
	closeErr  error
	once      sync.Once
	acceptErr error // set before done closes when the accept loop fails

	inflight sync.WaitGroup // stream requests being served here
}

// Listen starts accepting on ln. Serve the returned Listener with an
// http.Server; Close (or the server's Shutdown) stops both.
func Listen(ln net.Listener, opts Options) *Listener {
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{ln: ln, opts: opts, prefix: "GET " + opts.Path, conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

// Accept returns the next connection for net/http.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		if l.acceptErr != nil {
			return nil, l.acceptErr
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting. Stream requests under way finish (see Wait).
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.closeErr = l.ln.Close()
	})
	return l.closeErr
}

// Addr is the address listened on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Wait returns when every stream request this listener took has been
// handled (a hijacked stream counts as handled: its own tracking takes
// over), or when ctx ends.
func (l *Listener) Wait(ctx context.Context) error {
	ch := make(chan struct{})
	go func() {
		l.inflight.Wait()
		close(ch)
	}()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Listener) acceptLoop() {
	backoff := retry.New(5*time.Millisecond, time.Second)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			// Out of descriptors and the like: wait and retry, as
			// http.Server does.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				wait := backoff.Next()
				l.opts.Logger.Warn("accept failed; retrying", "err", err, "retry_in", wait)
				if !retry.Sleep(wait, l.done) {
					return
				}
				continue
			}
			if !errors.Is(err, net.ErrClosed) {
				l.acceptErr = err
			}
			close(l.done)
			return
		}
		backoff.Reset()
		l.inflight.Add(1)
		go l.serveConn(c)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// readers are the request-head buffers lent to connections.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func putReader(br *bufio.Reader) {
	br.Reset(nil) // drop the connection it read
	readers.Put(br)
}

// serveConn reads enough of c to tell a stream request from anything else,
// then serves it or hands c to net/http.
func (l *Listener) serveConn(c net.Conn) {
	defer l.inflight.Done()
	lr := &limitedConn{Conn: c, n: int64(l.opts.MaxHeaderBytes) + 4096}
	br := readers.Get().(*bufio.Reader)
	br.Reset(lr)
	var headDeadline time.Time
	if l.opts.ReadHeaderTimeout > 0 {
		headDeadline = time.Now().Add(l.opts.ReadHeaderTimeout)
		_ = c.SetReadDeadline(headDeadline)
	}
	prefix := l.prefix
	head, err := br.Peek(len(prefix) + 1)
	if err != nil {
		// Gone, or silent past the header timeout, before sending as much
		// as the shortest request line: no one to answer.
		putReader(br)
		c.Close()
		return
	}
	if !isStreamRequest(head, prefix) {
		// Not ours: net/http reads the connection from the start, limits
		// its own, and its head deadline no later than the one set here.
		lr.n = 1<<63 - 1
		select {
		case l.conns <- &handedConn{Conn: c, br: br, headDeadline: headDeadline}:
		case <-l.done:
			putReader(br)
			c.Close()
		}
		return
	}
	l.serveStream(c, lr, br)
}

// isStreamRequest reports whether head, the first bytes of a request,
// begins "GET <path>" followed by a space or a query.
func isStreamRequest(head []byte, prefix string) bool {
	return len(head) == len(prefix)+1 && string(head[:len(prefix)]) == prefix &&
		(head[len(prefix)] == ' ' || head[len(prefix)] == '?')
}

// serveStream parses the request head with net/http's parser and runs the
// handler on it. Whatever the handler does not take over is answered with
// Connection: close: a client whose stream was refused has no next request
// to make on this connection.
func (l *Listener) serveStream(c net.Conn, lr *limitedConn, br *bufio.Reader) {
	req, err := http.ReadRequest(br)
	if err == nil {
		err = checkRequest(req)
	}
	var behind []byte // what the client sent past its request head
	if err == nil && br.Buffered() > 0 {
		p, _ := br.Peek(br.Buffered())
		behind = bytes.Clone(p)
	}
	putReader(br)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || lr.n > 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			c.Close() // gone, or too slow: no one to answer
			return
		}
		code := http.StatusBadRequest
		if lr.n <= 0 {
			code = http.StatusRequestHeaderFieldsTooLarge
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(c, "HTTP/1.1 "+strconv.Itoa(code)+" "+http.StatusText(code)+
			"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"+
			strconv.Itoa(code)+" "+http.StatusText(code))
		closeWrite(c)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	req.RemoteAddr = c.RemoteAddr().String()
	w := &response{c: c, req: req, hdr: make(http.Header, 4), behind: behind}
	defer func() {
		if p := recover(); p != nil {
			// The router recovers from its handlers' panics; this is the
			// last line, as net/http's is for its connections.
			if p != http.ErrAbortHandler {
				l.opts.Logger.Error("panic serving a stream request", "panic", p)
			}
			if !w.hijacked {
				c.Close()
			}
		}
	}()
	l.opts.Handler.ServeHTTP(w, req)
	if !w.hijacked {
		w.finish()
	}
}

// checkRequest applies what http.Server checks of a request beyond
// parsing it.
func checkRequest(r *http.Request) error {
	if hosts, ok := r.Header["Host"]; ok && len(hosts) > 1 {
		return errors.New("too many Host headers")
	}
	if r.ProtoAtLeast(1, 1) && r.Host == "" {
		return errors.New("missing required Host header")
	}
	for k, vv := range r.Header {
		if !validFieldName(k) {
			return errors.New("invalid header name")
		}
		for _, v := range vv {
			if !validFieldValue(v) {
				return errors.New("invalid header value")
			}
		}
	}
	return nil
}

// validFieldName: a header name is a non-empty RFC 9110 token.
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validFieldValue: no control characters but horizontal tab.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// limitedConn reads at most n bytes of a request head, as http.Server
// limits it.
type limitedConn struct {
	net.Conn
	n int64
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request head too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.Conn.Read(p)
	l.n -= int64(n)
	return n, err
}

// handedConn is a connection passed to net/http with the bytes front read
// of it still buffered: they are read first, then the buffer goes back to
// the pool.
type handedConn struct {
	net.Conn
	mu sync.Mutex
	br *bufio.Reader
	// headDeadline is when the first request head must have arrived,
	// counted from the accept; zero once net/http has set its own.
	headDeadline time.Time
}

// SetReadDeadline holds net/http's first deadline, the one for the first
// request head (a bound from when net/http starts reading), to the front
// door's: the time spent here comes out of the same bound, so a slow head
// gets -read-header-timeout in all, not once per reader.
func (h *handedConn) SetReadDeadline(t time.Time) error {
	h.mu.Lock()
	if hd := h.headDeadline; !hd.IsZero() {
		h.headDeadline = time.Time{}
		if t.IsZero() || t.After(hd) {
			t = hd
		}
	}
	h.mu.Unlock()
	return h.Conn.SetReadDeadline(t)
}

func (h *handedConn) Read(p []byte) (int, error) {
	h.mu.Lock()
	br := h.br
	if br != nil && br.Buffered() == 0 {
		h.br = nil
		putReader(br)
		br = nil
	}
	h.mu.Unlock()
	if br == nil {
		return h.Conn.Read(p)
	}
	return br.Read(p)
}
