package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/server"
	"github.com/noticed/noticed/internal/sse"
)

// TestPublishLimits: each limit a publish can hit, lowered, answered with
// its status and a JSON error that names what is wrong.
func TestPublishLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxPayload: 512, maxUsers: 3, maxUserLen: 8, maxEventLen: 4})
	e.hostile()
	pub := token(t, "producer", "publish")
	tests := []struct {
		name, body string
		want       int
		mention    string
	}{
		{"at every limit", `{"users":["12345678","b","c"],"event":"abcd","data":"x"}`, 200, ""},
		{"user over -max-user-len", `{"user":"123456789"}`, 400, "1 to 8 bytes"},
		{"one of users over -max-user-len", `{"users":["a","123456789"]}`, 400, "1 to 8 bytes"},
		{"event over -max-event-len", `{"user":"a","event":"abcde"}`, 400, "longer than 4 bytes"},
		{"users over -max-users-per-publish", `{"users":["a","b","c","d"]}`, 400, "at most 3 users"},
		{"body over -max-payload", `{"user":"a","data":"` + strings.Repeat("x", 600) + `"}`, 413, "over 512 bytes"},
	}
	for _, tt := range tests {
		code, out := e.post("application/json", []byte(tt.body), pub)
		msg, _ := out["error"].(string)
		if code != tt.want || (tt.mention != "" && !strings.Contains(msg, tt.mention)) {
			t.Errorf("%s: %d %v, want %d naming %q", tt.name, code, out, tt.want, tt.mention)
		}
	}
	// The form goes through the same checks.
	code, out := e.post("application/x-www-form-urlencoded", []byte("user=123456789&data=x"), pub)
	if code != 400 {
		t.Errorf("form with a long user: %d %v, want 400", code, out)
	}
}

// TestLongSubIs401: -max-user-len applies to the token's sub too.
func TestLongSubIs401(t *testing.T) {
	t.Parallel()
	v, err := auth.NewVerifier(auth.Config{Secret: secret, MaxUserLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{verifier: v})
	e.hostile()
	e.subscribe("12345678")
	resp, s := e.open("token="+token(t, "123456789"), nil)
	if s != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("9-byte sub: %d, want 401", resp.StatusCode)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "1 to 8 bytes") {
		t.Errorf("body %s does not say why", body)
	}
}

// TestStalledPublishBodyIsCut: a producer that sends its headers and part
// of its body, then nothing, gets 408 and its connection closed, instead of
// holding them for ever.
func TestStalledPublishBodyIsCut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{bodyTimeout: 200 * time.Millisecond})
	e.hostile()
	conn := dial(t, e.url)
	conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // only so a broken server cannot hang the test
	fmt.Fprintf(conn, "POST /notice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user\":", token(t, "producer", "publish"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.HasPrefix(string(body), `{"error":"`) {
		t.Fatalf("stalled body: %d %s, want 408 with a JSON error", resp.StatusCode, body)
	}
	waitClosed(t, conn, br)
}

// TestUnknownKidIs401: after a rotation, a token naming a key that is no
// longer (or never was) in the set is refused, counted under its reason.
func TestUnknownKidIs401(t *testing.T) {
	t.Parallel()
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: secret, KeyID: "k2", Algorithm: "HS256"}}})
	v, err := auth.NewVerifier(auth.Config{KeyFile: set})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{verifier: v})
	e.hostile()
	signed := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "kay", "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	e.subscribe("kay") // no kid, and only one key: accepted
	if _, s := e.open("token="+url.QueryEscape(signed("k2")), nil); s == nil {
		t.Fatal("kid k2 refused")
	}
	resp, s := e.open("token="+url.QueryEscape(signed("k1")), nil)
	if s != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("kid k1: %d, want 401", resp.StatusCode)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "unknown key id") {
		t.Errorf("body %s, want it to say unknown key id", body)
	}
	if n := testutil.ToFloat64(e.metrics.AuthRefused.WithLabelValues("unknown_key")); n != 1 {
		t.Errorf("noticed_auth_refused_total{reason=unknown_key} = %v, want 1", n)
	}
}

// TestExpiredTokenStreamsComeBackSpreadOut: streams whose token expires are
// closed with a short retry: of their own, so the browsers (which fetch a
// fresh token on error) do not all come back in the same instant.
func TestExpiredTokenStreamsComeBackSpreadOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.hostile()
	tok, err := auth.Sign(secret, "eve", 2*time.Second, nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var readers []*sse.Reader
	for range 5 {
		resp, err := http.Get(e.url + "/notice?token=" + tok)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("open: %v %v", err, resp)
		}
		t.Cleanup(func() { resp.Body.Close() })
		readers = append(readers, sse.NewReader(resp.Body))
	}
	retries := map[int64]bool{}
	for _, r := range readers {
		for {
			if _, err := r.Next(); err != nil {
				break // the server closed it: the token expired
			}
		}
		last := r.Retry()
		if last < 100 || last >= 2000 {
			t.Errorf("expired stream's last retry: %d ms, want 100 to 2000", last)
		}
		retries[last] = true
	}
	if len(retries) < 2 {
		t.Errorf("5 expired streams were all told the same retry: %v", retries)
	}
}

// TestClientAddressInLog: X-Forwarded-For names the client in the log only
// when the peer is a trusted proxy.
func TestClientAddressInLog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		trusted string
		xff     string
		want    string
	}{
		{"spoofed header from an untrusted peer", "10.0.0.0/8", "203.0.113.1", "127.0.0.1"},
		{"no proxies trusted", "", "203.0.113.1", "127.0.0.1"},
		{"from a trusted proxy", "127.0.0.1", "198.51.100.9, 203.0.113.1", "203.0.113.1"},
		{"through two trusted proxies", "127.0.0.1,10.0.0.0/8", "198.51.100.9, 203.0.113.1, 10.1.2.3", "203.0.113.1"},
	}
	for _, tt := range tests {
		proxies, err := server.ParseProxies(tt.trusted)
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, envOptions{proxies: proxies})
		req, _ := http.NewRequest(http.MethodGet, e.url+"/healthz", nil)
		req.Header.Set("X-Forwarded-For", tt.xff)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := `"path":"/healthz","status":200`
		waitFor(t, "the request's log line", func() bool { return strings.Contains(e.logs.String(), want) })
		if got := e.logs.String(); !strings.Contains(got, `"client":"`+tt.want+`"`) {
			t.Errorf("%s: log %s, want client %s", tt.name, got, tt.want)
		}
	}
}

func dial(t *testing.T, base string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitClosed reads until the server closes conn. The deadline only keeps a
// broken server from hanging the test.
func waitClosed(t *testing.T, conn net.Conn, r io.Reader) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, r); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server left the connection open")
		}
	}
}

// slowAppend is the memory store with appends that take a while, as a
// loaded backend's do.
type slowAppend struct {
	routing.Store
	delay time.Duration
}

func (s slowAppend) Append(ctx context.Context, msgs []routing.Message) ([]notice.ID, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.Append(ctx, msgs)
}

// TestSlowBackendOutlastsBodyTimeout: the body deadline bounds the body
// only; a publish whose body arrived in time is not cut off while the
// backend takes longer than that to answer.
func TestSlowBackendOutlastsBodyTimeout(t *testing.T) {
	t.Parallel()
	ms := memstore.New(memstore.Options{MaxLen: 100, TTL: time.Hour})
	t.Cleanup(func() { ms.Close() })
	e := newEnv(t, envOptions{bodyTimeout: 100 * time.Millisecond, store: slowAppend{ms, 500 * time.Millisecond}})
	code, out := e.publish(map[string]any{"user": "sam", "data": "x"})
	if code != http.StatusOK {
		t.Fatalf("publish: %d %v, want 200", code, out)
	}
}
