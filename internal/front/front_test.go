package front

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5/middleware"
)

// handler stands for the router: /notice?ok hijacks and writes a stream
// head, /notice refuses with 401 JSON; net/http serves everything else
// (echoing POST bodies).
func handler(t testing.TB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/notice" || r.Method != http.MethodGet {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Path", r.URL.Path)
			_, _ = w.Write(b)
			return
		}
		if r.URL.Query().Get("ok") == "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"no token"}`)
			return
		}
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nretry: 1\n\nid: 1\ndata: "+r.RemoteAddr+"\n\n")
		}()
	})
}

// start serves h behind a front Listener on loopback.
func start(t *testing.T, opts Options) (addr string, l *Listener, srv *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Path == "" {
		opts.Path = "/notice"
	}
	if opts.Handler == nil {
		opts.Handler = handler(t)
	}
	l = Listen(ln, opts)
	srv = &http.Server{Handler: opts.Handler, ReadHeaderTimeout: opts.ReadHeaderTimeout, MaxHeaderBytes: opts.MaxHeaderBytes}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		if err := l.Wait(ctx); err != nil {
			t.Errorf("Wait: %v", err)
		}
	})
	return ln.Addr().String(), l, srv
}

// exchange sends raw and reads until the server closes the connection.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, b)
	}
	return string(b)
}

func TestStreamRequestIsServedAndHijacked(t *testing.T) {
	addr, _, _ := start(t, Options{})
	got := exchange(t, addr, "GET /notice?ok=1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.Contains(got, "data: 127.0.0.1:") {
		t.Fatalf("got %q", got)
	}
}

func TestRefusalIsSentWholeAndCloses(t *testing.T) {
	addr, _, _ := start(t, Options{})
	got := exchange(t, addr, "GET /notice HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
	if err != nil {
		t.Fatalf("%v in %q", err, got)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || string(body) != `{"error":"no token"}` || resp.ContentLength != int64(len(body)) ||
		!resp.Close || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Date") == "" {
		t.Fatalf("got %d %v %q", resp.StatusCode, resp.Header, body)
	}
}

// Anything but a stream request reaches net/http byte for byte: other
// paths, other methods, a path that only starts like the stream's, and
// pipelined keep-alive requests.
func TestOtherRequestsGoToNetHTTP(t *testing.T) {
	addr, _, _ := start(t, Options{})
	for _, tc := range []struct{ raw, want string }{
		{"POST /notice HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", "hello"},
		{"GET /noticeboard HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "X-Path: /noticeboard"},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", "X-Path: /b"},
	} {
		got := exchange(t, addr, tc.raw)
		if !strings.Contains(got, tc.want) || !strings.HasPrefix(got, "HTTP/1.1 200 OK") {
			t.Errorf("%q: got %q", tc.raw, got)
		}
	}
}

func TestBadStreamRequests(t *testing.T) {
	addr, _, _ := start(t, Options{MaxHeaderBytes: 1024})
	for _, tc := range []struct{ raw, want string }{
		{"GET /notice HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"}, // no Host
		{"GET /notice HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"GET /notice HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"GET /notice HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 8000) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
	} {
		if got := exchange(t, addr, tc.raw); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%.60q: got %q", tc.raw, got)
		}
	}
}

// A client that starts a request and stalls is cut off at the header
// timeout, whether or not it got far enough to be told apart.
func TestStalledRequestsAreClosed(t *testing.T) {
	addr, _, _ := start(t, Options{ReadHeaderTimeout: 200 * time.Millisecond})
	for _, partial := range []string{"", "GET /no", "GET /notice?token=abc HTTP/1.1\r\nHost: x\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, partial)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Errorf("%q: not closed by the server: %v", partial, err)
		}
		if len(b) > 0 {
			t.Errorf("%q: got %q", partial, b)
		}
	}
}

func TestCloseEndsAccept(t *testing.T) {
	_, l, srv := start(t, Options{})
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// A handler here that streams without taking the connection over fails
// its first flush (through chi's wrapper too), so it ends instead of
// holding its client's resources unseen: nothing is sent before it
// returns, and nothing watches for the client leaving.
func TestFlushFailsUntilTakenOver(t *testing.T) {
	flushed := make(chan error, 1)
	addr, _, _ := start(t, Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		ww.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(ww, ": ping\n\n")
		flushed <- http.NewResponseController(ww).Flush()
	})})
	got := exchange(t, addr, "GET /notice HTTP/1.1\r\nHost: x\r\n\r\n")
	if err := <-flushed; !errors.Is(err, errNotStreaming) {
		t.Fatalf("Flush: %v, want errNotStreaming", err)
	}
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\n: ping\n\n") {
		t.Fatalf("got %q: the response, whole, when the handler returned", got)
	}
}
