package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"
)

// The floor (-target floor) is the least a Go server can do to push
// events to streams: net/http's stock server, the connection taken over
// after the headers, one goroutine per stream waiting for the client to
// leave, and a map from user to streams in memory. No token check, no
// Redis, no history, no slow-client handling. It answers "what does this
// machine, with this tool beside it, allow at best?", so that noticed's
// figures can be read against it. It speaks Nchan's routes (GET
// /sub/<user>, POST /pub/<user> with the event's data as the body), so
// the tool drives it as it drives Nchan, and runs as this program started
// with -floor ADDR, in a process of its own as a server would.

// floorHead is what the floor sends on a new stream: what noticed sends,
// near enough, so that the tool counts the stream open on its first line.
const floorHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
	"X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n"

// floor is the server's state: every open stream, by user.
type floor struct {
	mu      sync.Mutex
	streams map[string][]*floorStream
}

// floorStream is one open stream; mu keeps its writes whole.
type floorStream struct {
	mu sync.Mutex
	c  net.Conn
}

// floorHandler serves the streams, the publishes and /readyz.
func floorHandler() http.Handler {
	f := &floor{streams: map[string][]*floorStream{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sub/{user}", f.subscribe)
	mux.HandleFunc("POST /pub/{user}", f.publish)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {})
	return mux
}

func (f *floor) subscribe(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot take the connection over", http.StatusInternalServerError)
		return
	}
	s := &floorStream{c: c}
	s.mu.Lock()
	f.mu.Lock()
	f.streams[user] = append(f.streams[user], s)
	f.mu.Unlock()
	_, err = io.WriteString(c, floorHead)
	s.mu.Unlock()
	go func() {
		var b [64]byte
		for err == nil {
			_, err = c.Read(b[:])
		}
		f.mu.Lock()
		list := f.streams[user]
		if i := slices.Index(list, s); i >= 0 {
			list = slices.Delete(list, i, i+1)
		}
		if len(list) == 0 {
			delete(f.streams, user)
		} else {
			f.streams[user] = list
		}
		f.mu.Unlock()
		c.Close()
	}()
}

// publish writes the body as one event to each of the user's streams.
// A stream whose client does not take it within a second is closed.
func (f *floor) publish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	frame := make([]byte, 0, len(body)+8)
	for line := range bytes.Lines(body) {
		frame = append(frame, "data: "...)
		frame = append(frame, bytes.TrimRight(line, "\r\n")...)
		frame = append(frame, '\n')
	}
	frame = append(frame, '\n')
	f.mu.Lock()
	list := slices.Clone(f.streams[r.PathValue("user")])
	f.mu.Unlock()
	for _, s := range list {
		s.mu.Lock()
		_ = s.c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := s.c.Write(frame); err != nil {
			s.c.Close()
		}
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusCreated)
}

// floorMain serves the floor on addr (loopback only) until ctx ends.
func floorMain(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-floor %q: want a loopback host:port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: floorHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startFloor runs the floor on a free loopback port, as this program with
// -floor.
func startFloor(ctx context.Context, cfg config, t *target) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	err = startOnFreePort(ctx, cfg, t, "the floor server", "/readyz", 5*time.Second, func(host string) (*exec.Cmd, error) {
		return exec.Command(self, "-floor", host), nil
	})
	if err != nil {
		return err
	}
	t.version = "floor (net/http, hijacked, in memory: no token check, no Redis, no history)" + procsNote(cfg)
	return nil
}
