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
	// Long enough that a loaded machine's scheduling stays well inside
	// the slack below: one bound closes at 4 s, two in turn would at 8.
	const bound = 4 * time.Second
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
			// A byte every 150 ms, each well inside the bound, and the head
			// never ends.
			tick := time.NewTicker(150 * time.Millisecond)
			defer tick.Stop()
			never := time.After(20 * time.Second)
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
				case <-never:
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

// TestStreamRequestWithBodyIs400: an event stream request has no body. A
// GET /notice that declares one (Content-Length, chunked), on either path
// to the stream handler, gets 400 with a JSON error and holds nothing.
// Before, the body was taken for input on the stream: sent with the head,
// the connection was closed with no answer at all; sent a moment later,
// the stream opened, then closed at the body's first byte.
func TestStreamRequestWithBodyIs400(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{perUser: 1})
	e.hostile()
	tok := token(t, "bod")
	for _, tc := range []struct{ name, target, headers, body string }{
		{"length, body sent", "/notice?token=" + tok, "Content-Length: 5\r\n", "hello"},
		{"length, body not sent", "/notice?token=" + tok, "Content-Length: 5\r\n", ""},
		{"chunked", "/notice?token=" + tok, "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"},
		{"chunked, empty", "/notice?token=" + tok, "Transfer-Encoding: chunked\r\n", "0\r\n\r\n"},
		{"expect continue", "/notice?token=" + tok, "Content-Length: 5\r\nExpect: 100-continue\r\n", ""},
		// An absolute target is not the front door's: net/http reads it.
		{"through net/http", "http://x/notice?token=" + tok, "Content-Length: 5\r\n", "hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, e.url)
			conn.SetDeadline(time.Now().Add(20 * time.Second)) // only so a broken server cannot hang the test
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n%s", tc.target, tc.headers, tc.body)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			var out struct{ Error string }
			if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &out) != nil || !strings.Contains(out.Error, "body") {
				t.Fatalf("got %d %q, want 400 with a JSON error about the body", resp.StatusCode, body)
			}
		})
	}
	// The user's one slot is free: nothing above held it.
	e.subscribe("bod")
}

// TestUnreadBodyAnsweredAtOnce: a request that declares a body and is
// answered without it being read (refused before its token is even
// checked, or on a path that reads no body) gets its answer at once, and
// the connection is closed. Before, net/http read what was left of the
// body before sending the answer, with no deadline: a client that declared
// one and never sent it got no answer and held a connection and a
// goroutine for as long as it stayed, no token needed.
func TestUnreadBodyAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.hostile()
	for _, tc := range []struct {
		name, head string
		status     int
	}{
		{"publish, no token", "POST /notice HTTP/1.1\r\nContent-Type: application/json\r\n", http.StatusUnauthorized},
		{"publish, bad token", "POST /notice?token=bad HTTP/1.1\r\nContent-Type: application/json\r\n", http.StatusUnauthorized},
		{"publish, no scope", "POST /notice HTTP/1.1\r\nAuthorization: Bearer " + token(t, "sub") + "\r\n", http.StatusForbidden},
		{"publish, over the limit", "POST /notice HTTP/1.1\r\nAuthorization: Bearer " + token(t, "pub", "publish") + "\r\nContent-Length: 100000\r\n", http.StatusRequestEntityTooLarge},
		{"chunked", "POST /notice HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", http.StatusUnauthorized},
		{"not found", "POST /nowhere HTTP/1.1\r\n", http.StatusNotFound},
		{"method not allowed", "PUT /notice HTTP/1.1\r\n", http.StatusMethodNotAllowed},
		{"a path that reads no body", "GET /healthz HTTP/1.1\r\n", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, e.url)
			conn.SetDeadline(time.Now().Add(20 * time.Second)) // only so a broken server cannot hang the test
			head := tc.head + "Host: x\r\n"
			if !strings.Contains(head, "Content-Length") && !strings.Contains(head, "chunked") {
				head += "Content-Length: 1000\r\n"
			}
			fmt.Fprintf(conn, "%s\r\n", head) // and no body, ever
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !json.Valid(body) {
				t.Fatalf("got %d %q, want %d with a JSON body", resp.StatusCode, body, tc.status)
			}
			waitClosed(t, conn, br)
		})
	}
	// A body read to its end keeps the connection for the next request.
	conn := dial(t, e.url)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	pub := token(t, "pub", "publish")
	for i := range 2 {
		body := `{"user":"keep","data":"x"}`
		fmt.Fprintf(conn, "POST /notice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", pub, len(body), body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("publish %d on one connection: %v %v", i, resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
}
