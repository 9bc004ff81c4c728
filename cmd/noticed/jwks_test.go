package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksServer is an identity provider's jwks_uri, serving the public keys of
// the issuers it is given, or 503 while down.
type jwksServer struct {
	*httptest.Server
	down atomic.Bool
	mu   sync.Mutex
	set  []issuer
}

func newJWKSServer(t *testing.T, issuers ...issuer) *jwksServer {
	s := &jwksServer{set: issuers}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		var set jose.JSONWebKeySet
		for _, is := range s.set {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "ES256", Use: "sig"})
		}
		s.mu.Unlock()
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(issuers ...issuer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set = issuers
}

// TestJWKSURL: keys come from a provider named by -jwks-url; a key the
// provider starts using is accepted without a restart; /readyz says the
// keys are fresh, then stale while the provider is down (tokens still
// accepted), then not ready once they expired.
func TestJWKSURL(t *testing.T) {
	t.Parallel()
	key1, key2 := newIssuer(t, "idp-1"), newIssuer(t, "idp-2")
	idp := newJWKSServer(t, key1)
	p := runMain(t, "-jwks-url", idp.URL, "-jwks-refresh", "1s", "-jwks-max-age", "4s", "-jwks-unknown-kid-interval", "1s")
	if loaded := regexp.MustCompile(`"msg":"token keys loaded".*"kids":\["idp-1"\]`); !loaded.MatchString(p.log.String()) {
		t.Errorf("no start-up line matching %v", loaded)
	}
	readyz := func() (int, map[string]string) {
		t.Helper()
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, body := readyz(); code != 200 || body["keys"] != "fresh" {
		t.Errorf("/readyz: %d %v; want 200 with keys fresh", code, body)
	}
	if code := publishStatus(t, p.url, key1.token(t, "pub", "publish"), "u", "x"); code != 200 {
		t.Fatalf("token of the provider's key: %d", code)
	}

	idp.serve(key2)
	if code := publishStatus(t, p.url, key2.token(t, "pub", "publish"), "u", "x"); code != 200 {
		t.Fatalf("token of the provider's new key: %d; want 200 without a restart", code)
	}

	idp.down.Store(true)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	waitUntil(t, ctx, "/readyz to say stale", func() bool { code, body := readyz(); return code == 200 && body["keys"] == "stale" })
	if code := publishStatus(t, p.url, key2.token(t, "pub2", "publish"), "u", "x"); code != 200 {
		t.Errorf("token with the provider down, keys not yet expired: %d; want 200", code)
	}
	waitUntil(t, ctx, "/readyz to say 503", func() bool { code, _ := readyz(); return code == 503 })
	resp, err := http.Get(p.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, resp, http.StatusServiceUnavailable, "token keys unavailable")
	if code := publishStatus(t, p.url, key2.token(t, "pub3", "publish"), "u", "x"); code != 401 {
		t.Errorf("token after the keys expired: %d; want 401", code)
	}
}

func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestJWKSBadFlags: a -jwks-url that cannot work fails at start, saying
// why.
func TestJWKSBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"-jwks-url", "ftp://idp.example/jwks.json"}, "want an http:// or https:// URL"},
		{[]string{"-jwks-url", "http://127.0.0.1:1/jwks.json"}, "token keys unavailable: http://127.0.0.1:1/jwks.json"},
		{[]string{"-jwks-url", "https://idp.example/jwks.json", "-jwt-secret", "0123456789abcdef0123456789abcdef"}, "excludes -jwt-secret"},
		{[]string{"-jwks-url", "https://idp.example/jwks.json", "-jwks-max-age", "1h"}, "-jwks-max-age must be longer than -jwks-refresh"},
		{[]string{"-jwks-url", "https://idp.example/jwks.json", "-jwks-unknown-kid-interval", "10ms"}, "at least 1s"},
	} {
		out, err := exec.Command(binary, tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.mention) {
			t.Errorf("%v: %v %q; want a failure saying %q", tc.args, err, out, tc.mention)
		}
	}
}

func TestURLList(t *testing.T) {
	var l urlList
	for _, s := range []string{"https://a.example/jwks", "https://b.example/jwks  http://c.example/keys"} {
		if err := l.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.String(); got != "https://a.example/jwks https://b.example/jwks http://c.example/keys" {
		t.Errorf("urls: %q", got)
	}
	for _, bad := range []string{"", " ", "a.example/jwks", "file:///etc/jwks", "https://"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
