package front_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/front"
	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/metrics"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/server"
	"github.com/noticed/noticed/internal/sse"
)

// FuzzFront sends each input on a connection twice, then half-closes it
// (the client is gone) and reads to the end:
//
//   - to a front Listener alone: front never panics, and a connection
//     that is not a stream request reaches net/http with every byte the
//     client sent, in order;
//   - to the listener production serves on (server.Listen: the front
//     door, net/http, the router, the stream handler, a hub) with a valid
//     token wherever the input says TOKEN: whatever it opened is released
//     once the client has gone, with no stream left open
//     (noticed_streams_open back to 0), no goroutine and no descriptor.
func FuzzFront(f *testing.F) {
	for _, seed := range []string{
		"GET /notice?token=TOKEN HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /notice?token=TOKEN HTTP/2.0\r\nHost: x\r\n\r\n",
		"GET /notice?token=TOKEN HTTP/1.0\r\n\r\n",
		"GET /notice?token=TOKEN&lastEventId=0 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"GET /notice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer TOKEN\r\nLast-Event-ID: 1-0\r\n\r\nxyz",
		"GET /notice HTTP/1.1\r\nHost: x\r\nCookie: noticed_token=TOKEN\r\nOrigin: http://evil\r\n\r\n",
		"POST /notice HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
		"GET /notice HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /notic",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}

	// The front door alone, with a stand-in handler and net/http's side a
	// reader of each handed connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	served := make(chan struct{}, 1)
	bare := front.Listen(ln, front.Options{Path: "/notice", ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served <- struct{}{}
		w.WriteHeader(http.StatusUnauthorized)
	})})
	defer bare.Close()
	handed := make(chan []byte, 1)
	go func() {
		for {
			c, err := bare.Accept()
			if err != nil {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			handed <- b
			c.Close()
		}
	}()

	prod, m := production(f)
	tok, err := auth.Sign(fuzzSecret, "fuzz", time.Hour, nil, "", "")
	if err != nil {
		f.Fatal(err)
	}
	// What the process holds with nothing connected, once what starts on
	// the first stream (the watch for shutdown) has started.
	for _, warm := range []string{"GET /notice?token=" + tok + " HTTP/1.1\r\nHost: x\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"} {
		if err := roundTrip(prod, []byte(warm)); err != nil {
			f.Fatal(err)
		}
	}
	var goroutines, fds int
	var once sync.Once

	f.Fuzz(func(t *testing.T, in []byte) {
		// Counted here: each input runs on a goroutine of its own.
		once.Do(func() { goroutines, fds = settled(m) })
		// The front door alone.
		if err := roundTrip(bare.Addr().String(), in); err != nil {
			t.Fatalf("%q: the connection was neither served nor handed on nor closed: %v", in, err)
		}
		stream := isStreamRequest(in)
		select {
		case b := <-handed:
			if stream || !bytes.Equal(b, in) {
				t.Fatalf("net/http got %q of %q", b, in)
			}
		case <-served:
			if !stream {
				t.Fatalf("%q was served as a stream request", in)
			}
		default:
			// Closed by front: a stream request it could not parse, or
			// less than a request line.
			if !stream && len(in) >= len("GET /notice ") {
				t.Fatalf("%q was closed, not handed on", in)
			}
		}

		// Production's listener, with a token that opens streams.
		in = bytes.ReplaceAll(in, []byte("TOKEN"), []byte(tok))
		if err := roundTrip(prod, in); err != nil {
			t.Fatalf("%q: the connection was not closed once the client had gone: %v", in, err)
		}
		released := func() bool {
			return testutil.ToFloat64(m.StreamsOpen) == 0 && runtime.NumGoroutine() <= goroutines && (fds < 0 || openFiles() <= fds)
		}
		for deadline := time.Now().Add(10 * time.Second); !released(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%q: not released after the client left: %v streams open, %d goroutines (%d before), %d descriptors (%d before)",
					in, testutil.ToFloat64(m.StreamsOpen), runtime.NumGoroutine(), goroutines, openFiles(), fds)
			}
		}
	})
}

var fuzzSecret = []byte("fuzz-secret-that-is-long-enough-for-hs256")

// production starts noticed's router on the memory backend behind
// server.Listen, as cmd/noticed does, and returns its address.
func production(f *testing.F) (string, *metrics.Metrics) {
	store := memstore.New(memstore.Options{MaxLen: 100, TTL: time.Hour})
	f.Cleanup(func() { store.Close() })
	log := slog.New(slog.DiscardHandler)
	m := metrics.New(prometheus.NewRegistry())
	hub := routing.New(store, sse.AppendEntry, routing.Options{MaxConnsPerUser: 1000, Metrics: m, Logger: log})
	go hub.Run()
	v, err := auth.NewVerifier(auth.Config{Secret: fuzzSecret})
	if err != nil {
		f.Fatal(err)
	}
	h := server.New(server.Config{
		Verifier: v, Store: store, Metrics: m, Logger: log,
		Streams:     sse.NewHandler(hub, store, sse.Options{Metrics: m, Logger: log, WriteTimeout: 2 * time.Second}),
		BodyTimeout: 5 * time.Second,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	l := server.Listen(ln, h, server.Limits{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}, log)
	go func() { _ = l.Serve() }()
	f.Cleanup(func() {
		hub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Shutdown(ctx)
	})
	return l.Addr().String(), m
}

// roundTrip connects, sends in, half-closes (the client has nothing more
// to say) and reads until the server closes the connection.
func roundTrip(addr string, in []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.Write(in)
	_ = c.(*net.TCPConn).CloseWrite()
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		return err
	}
	return nil
}

// isStreamRequest: the input begins "GET /notice" and a space or a query.
func isStreamRequest(in []byte) bool {
	const p = "GET /notice"
	return len(in) > len(p) && string(in[:len(p)]) == p && (in[len(p)] == ' ' || in[len(p)] == '?')
}

// openFiles counts the process's descriptors; -1 where /proc cannot say.
func openFiles() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(fds)
}

// settled waits for no stream open and the goroutine and descriptor
// counts to stay put for a moment, and returns those counts.
func settled(m *metrics.Metrics) (goroutines, fds int) {
	same := 0
	for deadline := time.Now().Add(10 * time.Second); same < 5 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		g, n := runtime.NumGoroutine(), openFiles()
		if g == goroutines && n == fds && testutil.ToFloat64(m.StreamsOpen) == 0 {
			same++
		} else {
			same = 0
		}
		goroutines, fds = g, n
	}
	return goroutines, fds
}
