package sse_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/sse"
)

// benchServer serves streams for the user named in the path, without
// auth: these benchmarks measure the stream path only.
func benchServer(b *testing.B, queueLen int) (*httptest.Server, routing.Store, *routing.Hub) {
	store := memstore.New(memstore.Options{MaxLen: 100000})
	hub := routing.New(store, sse.AppendEntry, routing.Options{QueueLen: queueLen})
	go hub.Run()
	h := sse.NewHandler(hub, store, sse.Options{Heartbeat: time.Hour})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.Serve(w, r, strings.TrimPrefix(r.URL.Path, "/"), time.Time{}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	b.Cleanup(func() {
		hub.Close()
		srv.CloseClientConnections()
		srv.Close()
		store.Close()
	})
	return srv, store, hub
}

// dial opens a stream on a raw connection and reads up to the first
// retry field; the reply's head is left in br.
func dial(b *testing.B, addr, user string) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n", user)
	br := bufio.NewReaderSize(c, 4096)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if strings.HasPrefix(line, "retry:") {
			return c, br
		}
	}
}

// BenchmarkDelivery measures the whole live path: an entry appended to
// the store, read by the hub, encoded once, written by each stream's
// pump to its socket and read by a client. ns/op and allocs/op are per
// entry; allocs/delivery divides by the streams each entry reaches.
func BenchmarkDelivery(b *testing.B) {
	for _, tc := range []struct{ users, perUser int }{{1, 100}, {100, 1}} {
		b.Run(fmt.Sprintf("hijacked/users=%d/streams=%d", tc.users, tc.perUser), func(b *testing.B) {
			benchDelivery(b, tc.users, tc.perUser)
		})
	}
}

func benchDelivery(b *testing.B, users, perUser int) {
	srv, store, _ := benchServer(b, 4096)
	addr := strings.TrimPrefix(srv.URL, "http://")
	var received, closed atomic.Int64
	var wg sync.WaitGroup
	names := make([]string, users)
	for u := range names {
		names[u] = fmt.Sprintf("u%d", u)
		for range perUser {
			c, br := dial(b, addr, names[u])
			b.Cleanup(func() { c.Close() })
			wg.Go(func() {
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						closed.Add(1)
						return
					}
					if len(line) > 4 && string(line[:4]) == "data" {
						received.Add(1)
					}
				}
			})
		}
	}
	// Every stream follows its user once its position block was written;
	// one entry each proves it.
	for _, n := range names {
		if _, err := store.Append(context.Background(), []routing.Message{{User: n, Data: "warm"}}); err != nil {
			b.Fatal(err)
		}
	}
	for received.Load() < int64(users*perUser) {
		runtime.Gosched()
	}
	received.Store(0)
	msgs := make([]routing.Message, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		msgs = msgs[:0]
		for i := 0; i < 64 && sent < b.N; i++ {
			msgs = append(msgs, routing.Message{User: names[sent%users], Data: `{"n":1}`})
			sent++
		}
		if _, err := store.Append(context.Background(), msgs); err != nil {
			b.Fatal(err)
		}
		for received.Load() < int64(sent-512)*int64(perUser) {
			mustBeOpen(b, &closed)
			runtime.Gosched()
		}
	}
	for received.Load() < int64(b.N)*int64(perUser) {
		mustBeOpen(b, &closed)
		runtime.Gosched()
	}
	b.StopTimer()
	d := float64(b.N) * float64(perUser)
	b.ReportMetric(d/b.Elapsed().Seconds(), "deliveries/s")
}

func mustBeOpen(b *testing.B, closed *atomic.Int64) {
	if n := closed.Load(); n > 0 {
		b.Fatalf("%d streams closed during the benchmark (fell behind?)", n)
	}
}

// BenchmarkIdleStream reports the server-side memory an open, idle stream
// costs (heap and goroutine stacks after a GC, client side excluded): the
// figure behind "≤ 10 KB per stream".
func BenchmarkIdleStream(b *testing.B) {
	b.Run("hijacked", func(b *testing.B) {
		const n = 2000
		srv, _, hub := benchServer(b, 0) // default queue
		addr := strings.TrimPrefix(srv.URL, "http://")
		b.ReportAllocs()
		for range b.N {
			before := serverMemory()
			goBefore := runtime.NumGoroutine()
			conns := make([]net.Conn, n)
			for i := range conns {
				conns[i], _ = dial(b, addr, fmt.Sprintf("idle%d", i))
			}
			// The client side holds n connections; take them out so the
			// figure is the server's.
			after := serverMemory() - socketCost(b, n)/2
			b.ReportMetric(float64(after-before)/n, "B/stream")
			b.ReportMetric(float64(runtime.NumGoroutine()-goBefore)/n, "goroutines/stream")
			for _, c := range conns {
				c.Close()
			}
			for hub.Followed() > 0 {
				runtime.Gosched()
			}
		}
	})
}

func serverMemory() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

// socketCost is what n loopback connections cost in this process, both
// ends held and idle: the client side of the streams is half of it.
func socketCost(b *testing.B, n int) int64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, n)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	before := serverMemory()
	conns := make([]net.Conn, 0, 2*n)
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c, <-accepted)
	}
	cost := serverMemory() - before
	for _, c := range conns {
		c.Close()
	}
	return cost
}
