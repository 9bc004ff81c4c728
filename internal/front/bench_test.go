package front

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// memConn is a connection that reads a fixed request and discards writes.
type memConn struct {
	net.Conn // nil: the methods front does not use
	r        bytes.Reader
}

func (c *memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func (c *memConn) RemoteAddr() net.Addr             { return remote }
func (c *memConn) LocalAddr() net.Addr              { return remote }

var remote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// BenchmarkStreamRequest is front's share of opening a stream: telling the
// request apart, parsing it, and handing the connection to a handler that
// takes it over at once (as the stream handler does). The token check, the
// follow and the stream itself are not in it.
func BenchmarkStreamRequest(b *testing.B) {
	req := []byte("GET /notice?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMzQ1In0.c2lnbmF0dXJl HTTP/1.1\r\n" +
		"Host: 127.0.0.1:8080\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nLast-Event-ID: 1764151234567-0\r\n\r\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
	})
	l := &Listener{prefix: "GET /notice", opts: Options{Path: "/notice", Handler: h, MaxHeaderBytes: http.DefaultMaxHeaderBytes, Logger: slog.New(slog.DiscardHandler)},
		conns: make(chan net.Conn), done: make(chan struct{})}
	c := &memConn{}
	b.ReportAllocs()
	for b.Loop() {
		c.r.Reset(req)
		l.inflight.Add(1)
		l.serveConn(c)
	}
}
