package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/noticed/noticed/internal/auth"
)

const limitSecret = "limits-test-secret-limits-test-secret"

func limitToken(t *testing.T, sub string, scopes ...string) string {
	t.Helper()
	tok, err := auth.Sign([]byte(limitSecret), sub, time.Hour, scopes, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rawConn dials the server. Its read deadline only keeps a broken server
// from hanging the test; no assertion depends on time.
func rawConn(t *testing.T, base string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	return conn, bufio.NewReader(conn)
}

// closedByServer reads until the server closes the connection.
func closedByServer(t *testing.T, r io.Reader) {
	t.Helper()
	rest, err := io.ReadAll(r)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server left the connection open (read %q)", rest)
	}
}

// TestRequestReadLimits runs the binary with short read limits: a client
// that sends nothing, half a request or half a body is cut off, and
// oversized headers are refused.
func TestRequestReadLimits(t *testing.T) {
	t.Parallel()
	p := start(t, []string{"NOTICED_JWT_SECRET=" + limitSecret},
		"-addr", "127.0.0.1:0", "-read-header-timeout", "300ms", "-idle-timeout", "1h", "-max-header-bytes", "1024")

	t.Run("silent connection closed", func(t *testing.T) {
		t.Parallel()
		_, r := rawConn(t, p.url)
		closedByServer(t, r)
	})
	t.Run("slow-loris headers closed", func(t *testing.T) {
		t.Parallel()
		conn, r := rawConn(t, p.url)
		fmt.Fprint(conn, "GET /notice HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		closedByServer(t, r)
	})
	t.Run("stalled publish body: 408", func(t *testing.T) {
		t.Parallel()
		conn, r := rawConn(t, p.url)
		fmt.Fprintf(conn, "POST /notice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"user\":", limitToken(t, "p", "publish"))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout || !strings.HasPrefix(string(body), `{"error":`) {
			t.Fatalf("%d %s, want 408 with a JSON error", resp.StatusCode, body)
		}
		closedByServer(t, r)
	})
	t.Run("headers over -max-header-bytes: 431", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequest(http.MethodGet, p.url+"/healthz", nil)
		// net/http allows 4 KiB over the limit; this is well past both.
		req.Header.Set("X-Big", strings.Repeat("b", 8<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%d, want 431", resp.StatusCode)
		}
		req.Header.Set("X-Big", strings.Repeat("b", 512))
		if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("headers within the limit: %v %v", resp, err)
		}
		resp.Body.Close()
	})
	t.Run("token expired 5s ago, no leeway: 401", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Get(p.url + "/notice?token=" + expiredToken(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%d, want 401", resp.StatusCode)
		}
	})
	t.Run("SIGHUP without a key file changes nothing", func(t *testing.T) {
		t.Parallel()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		p.stdout.waitLine(t, regexp.MustCompile(`nothing to reload`))
		resp, err := http.Get(p.url + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("after SIGHUP: %v %v", resp, err)
		}
		resp.Body.Close()
	})
}

func expiredToken(t *testing.T, ago time.Duration) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "late", "exp": time.Now().Add(-ago).Unix()}).SignedString([]byte(limitSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestServeLimits runs noticed with every other limit lowered and checks
// each one answers as documented.
func TestServeLimits(t *testing.T) {
	t.Parallel()
	p := runMain(t, "-jwt-secret", limitSecret, "-max-user-len", "8", "-read-header-timeout", "1h", "-idle-timeout", "300ms",
		"-max-conns-per-user", "1", "-max-conns", "2", "-max-event-len", "4",
		"-max-users-per-publish", "2", "-max-payload", "256", "-jwt-leeway", "1m")

	// Idle keep-alive: the read-header timeout is an hour, so only
	// -idle-timeout can close this one.
	conn, r := rawConn(t, p.url)
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	closedByServer(t, r)

	// Streams: one per user, two per instance.
	get := func(sub string) *http.Response {
		t.Helper()
		resp, err := http.Get(p.url + "/notice?token=" + url.QueryEscape(limitToken(t, sub)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := get("ann"); resp.StatusCode != 200 {
		t.Fatalf("first stream: %d", resp.StatusCode)
	}
	wantError(t, get("ann"), http.StatusTooManyRequests, "")
	if resp := get("bob"); resp.StatusCode != 200 {
		t.Fatalf("second user's stream: %d", resp.StatusCode)
	}
	full := get("cy")
	wantError(t, full, http.StatusServiceUnavailable, "")
	if full.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	// -max-user-len applies to sub: 401 before any
	// stream limit is looked at.
	wantError(t, get("123456789"), http.StatusUnauthorized, "1 to 8 bytes")

	// -jwt-leeway: a token that expired 5s ago is still good within 1m.
	// The instance is full, so the answer past authentication is 503.
	late, err := http.Get(p.url + "/notice?token=" + expiredToken(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	late.Body.Close()
	if late.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("token 5s past exp with -jwt-leeway 1m: %d, want it past authentication (503, full)", late.StatusCode)
	}

	pub := limitToken(t, "p", "publish")
	for _, tt := range []struct {
		body    string
		want    int
		mention string
	}{
		{`{"user":"ann","event":"abcd","data":"x"}`, 200, ""},
		{`{"user":"ann","event":"abcde"}`, 400, "longer than 4 bytes"},
		{`{"user":"123456789"}`, 400, "1 to 8 bytes"},
		{`{"users":["a","b","c"]}`, 400, "at most 2 users"},
		{`{"user":"ann","data":"` + strings.Repeat("x", 300) + `"}`, 413, "over 256 bytes"},
	} {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/notice", strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer "+pub)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if tt.want == 200 {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s: %d, want 200", tt.body, resp.StatusCode)
			}
			continue
		}
		wantError(t, resp, tt.want, tt.mention)
	}
}

// wantError checks a refusal: its status and a JSON error naming mention.
func wantError(t *testing.T, resp *http.Response, code int, mention string) {
	t.Helper()
	defer resp.Body.Close()
	var body struct{ Error string }
	err := json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != code || err != nil || body.Error == "" || !strings.Contains(body.Error, mention) {
		t.Errorf("%s: %d %q (%v), want %d with a JSON error naming %q", resp.Request.URL.Path, resp.StatusCode, body.Error, err, code, mention)
	}
}
