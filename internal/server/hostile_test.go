package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/server"
)

// Clients that misbehave on purpose, with raw sockets, against the
// listener production serves on. Each test ends with every stream it
// opened released (env.hostile).

// TestHTTPVersionIs505: a request line with a version other than HTTP/1.0
// or 1.1 on a plain connection gets 505 with a JSON error and its
// connection closed, on the stream path (the front door) as elsewhere,
// and holds no stream: before, "GET /notice?token=... HTTP/2.0" was
// accepted, answered nothing and kept its user's slot until the token
// expired.
func TestHTTPVersionIs505(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{perUser: 1})
	e.hostile()
	tok := token(t, "vic")
	for _, tc := range []struct{ target, version string }{
		{"GET /notice?token=" + tok, "HTTP/2.0"},
		{"GET /notice?token=" + tok, "HTTP/1.2"},
		{"GET /notice?token=" + tok, "HTTP/3.0"},
		{"GET /notice?token=" + tok, "HTTP/0.9"},
		{"GET /healthz", "HTTP/1.2"},
		{"POST /notice", "HTTP/1.2"},
	} {
		line := tc.target + " " + tc.version
		t.Run(tc.target[:min(len(tc.target), 11)]+" "+tc.version, func(t *testing.T) {
			conn := dial(t, e.url)
			conn.SetDeadline(time.Now().Add(20 * time.Second)) // only so a broken server cannot hang the test
			fmt.Fprintf(conn, "%s\r\nHost: x\r\nContent-Length: 0\r\n\r\n", line)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			var out struct{ Error string }
			if resp.StatusCode != http.StatusHTTPVersionNotSupported || json.Unmarshal(body, &out) != nil || out.Error == "" {
				t.Fatalf("got %d %q, want 505 with a JSON error", resp.StatusCode, body)
			}
			waitClosed(t, conn, br)
		})
	}
	// The user's one slot is free: nothing above held it.
	e.subscribe("vic")
}

// TestSlowHeadOneBound: a request head gets -read-header-timeout in all,
// counted from the connection's accept, whichever path reads it. Before,
// a client slow enough to take most of the bound over the first dozen
// bytes (what the front door reads to tell a stream from the rest) got
// net/http's whole bound again after the hand-off.
func TestSlowHeadOneBound(t *testing.T) {
	t.Parallel()
	const bound = 2 * time.Second
	for _, head := range []string{
		"GET /healthz HTTP/1.1\r\nX-Slow: ",                              // handed to net/http
		"GET /notice?token=" + token(t, "sly") + " HTTP/1.1\r\nX-Slow: ", // read by the front door
	} {
		t.Run(head[:12], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{limits: server.Limits{ReadHeaderTimeout: bound}})
			e.hostile()
			conn := dial(t, e.url)
			start := time.Now()
			closed := make(chan time.Duration, 1)
			go func() {
				_, _ = io.Copy(io.Discard, conn)
				closed <- time.Since(start)
			}()
			// A byte every 150 ms: the first 12 take 1.8 s of the 2 s, and
			// the head never ends.
			tick := time.NewTicker(150 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case took := <-closed:
					if took > bound*3/2 {
						t.Fatalf("closed after %v, want about %v (one bound for the whole head)", took, bound)
					}
					return
				case <-tick.C:
					b := byte('a')
					if i < len(head) {
						b = head[i]
					}
					_, _ = conn.Write([]byte{b})
				case <-time.After(20 * time.Second):
					t.Fatal("the server left a never-ending head open")
				}
			}
		})
	}
}

// TestInputOnStreamCloses: bytes from the client after its request are
// no part of SSE. A stream whose client sends any, right behind the
// request or once it is open, is closed and counted
// (noticed_streams_refused_total{reason="client_input"}), instead of
// costing a read per few bytes for as long as the client keeps sending.
func TestInputOnStreamCloses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.hostile()
	input := e.metrics.StreamsRefused.WithLabelValues("client_input")
	for i, tc := range []struct {
		name        string
		behind, now string // sent right behind the request; once the stream is open
	}{
		{"once open", "", "x"},
		{"a pipelined request", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"a stream of bytes", "", strings.Repeat("0123456789abcdef", 64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, e.url)
			conn.SetDeadline(time.Now().Add(20 * time.Second)) // only so a broken server cannot hang the test
			fmt.Fprintf(conn, "GET /notice?token=%s HTTP/1.1\r\nHost: x\r\n\r\n%s", token(t, "ivy"), tc.behind)
			br := bufio.NewReader(conn)
			if tc.now != "" {
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("stream: %v %v", resp, err)
				}
				waitFor(t, "the stream to open", func() bool { return testutil.ToFloat64(e.metrics.StreamsOpen) == 1 })
				_, _ = io.WriteString(conn, tc.now)
			}
			waitClosed(t, conn, br)
			waitFor(t, "the stream to be released", func() bool { return testutil.ToFloat64(e.metrics.StreamsOpen) == 0 })
			if got := testutil.ToFloat64(input); got != float64(i+1) {
				t.Fatalf("client_input closures: %v, want %d", got, i+1)
			}
		})
	}
}
