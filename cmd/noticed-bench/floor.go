package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/noticed/noticed/internal/redistest"
)

// The floor (-target floor) is the least a Go server can do per event
// stream: net/http's stock server, the connection taken over after the
// headers, and one goroutine per stream waiting for the client to leave.
// No token check, no Redis, no history. It answers "what does this
// machine, with this tool beside it, allow at best?", so that noticed's
// opens and memory can be read against it. It runs as this program
// started with -floor ADDR, in a process of its own as a server would.

// floorHead is what the floor sends on a new stream: what noticed sends,
// near enough, so that the tool counts the stream open on its first line.
const floorHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
	"X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n"

// floorHandler serves GET /notice (any query) as a stream that never
// sends an event, and /readyz.
func floorHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /notice", func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "cannot take the connection over", http.StatusInternalServerError)
			return
		}
		if _, err := io.WriteString(c, floorHead); err != nil {
			c.Close()
			return
		}
		go func() {
			defer c.Close()
			var b [64]byte
			for {
				if _, err := c.Read(b[:]); err != nil {
					return
				}
			}
		}()
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {})
	return mux
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
	t.secret = randomHex(32) // tokens are sent as to noticed, and ignored
	var lastErr error
	for range 5 {
		port, err := redistest.FreePort()
		if err != nil {
			return err
		}
		t.host = "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(self, "-floor", t.host)
		cmd.Env = os.Environ()
		if cfg.serverProcs > 0 {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(cfg.serverProcs))
		}
		dieWithParent(cmd)
		p, err := startProcess(cmd)
		if err != nil {
			return fmt.Errorf("start the floor server: %w", err)
		}
		if lastErr = waitHTTP(ctx, p, t.base()+"/readyz", nil); lastErr == nil {
			t.pids = []int{cmd.Process.Pid}
			t.stops = append(t.stops, func() { p.stop(5*time.Second, false) })
			t.version = "floor (net/http, hijacked, no token check, no Redis)"
			if cfg.serverProcs > 0 {
				t.version += ", GOMAXPROCS=" + strconv.Itoa(cfg.serverProcs)
			}
			return nil
		}
		p.stop(time.Second, false)
		if !strings.Contains(p.out.String(), "address already in use") {
			break
		}
	}
	return lastErr
}
