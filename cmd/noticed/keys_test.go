package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/noticed/noticed/internal/auth"
)

// issuer is an identity provider's signing key and its kid.
type issuer struct {
	kid string
	key *ecdsa.PrivateKey
}

func newIssuer(t *testing.T, kid string) issuer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return issuer{kid, k}
}

func (is issuer) token(t *testing.T, sub string, scopes ...string) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = is.kid
	s, err := tok.SignedString(is.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeJWKS replaces path with a JWK Set of the issuers' public keys, the
// way a deployment would: a new file renamed over the old one.
func writeJWKS(t *testing.T, path string, issuers ...issuer) {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, is := range issuers {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "ES256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// publishStatus publishes one event to user with tok and returns the status.
func publishStatus(t *testing.T, base, tok, user, data string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/notice", strings.NewReader(url.Values{"user": {user}, "data": {data}}.Encode()))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSIGHUPRotatesKeys: keys rotate through the key file and SIGHUP,
// while a stream opened with the old key stays open and keeps receiving.
func TestSIGHUPRotatesKeys(t *testing.T) {
	t.Parallel()
	key1, key2 := newIssuer(t, "key-1"), newIssuer(t, "key-2")
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, file, key1)
	p := start(t, nil, "-addr", "127.0.0.1:0", "-jwt-key-file", file)
	if loaded := regexp.MustCompile(`"msg":"token keys loaded".*"kids":\["key-1"\]`); !p.stdout.saw(loaded) {
		t.Errorf("no start-up line matching %v", loaded)
	}
	hup := func() {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	_, events := openStream(t, p.url, key1.token(t, "rota"))
	if code := publishStatus(t, p.url, key2.token(t, "pub", "publish"), "rota", "x"); code != http.StatusUnauthorized {
		t.Fatalf("key-2 before it is in the file: %d, want 401", code)
	}

	// Rotation, step 1: both keys.
	writeJWKS(t, file, key1, key2)
	hup()
	p.stdout.waitLine(t, regexp.MustCompile(`"msg":"keys reloaded".*"kids":\["key-1","key-2"\]`))
	if code := publishStatus(t, p.url, key2.token(t, "pub", "publish"), "rota", "after step 1"); code != 200 {
		t.Fatalf("key-2 after the reload: %d, want 200", code)
	}
	if ev, err := events.Next(); err != nil || ev.Data != "after step 1" {
		t.Fatalf("stream opened with key-1: %+v, %v; want the event", ev, err)
	}

	// A broken file keeps the keys in force and says why.
	writeFile(t, file, []byte(`{"keys":[{"kty":"EC","crv":"P-256"`))
	hup()
	p.stdout.waitLine(t, regexp.MustCompile(`"level":"ERROR","msg":"keys not reloaded; the previous keys stay in force","file":"`+regexp.QuoteMeta(file)+`","err":".+"`))
	if code := publishStatus(t, p.url, key1.token(t, "pub", "publish"), "rota", "still key-1"); code != 200 {
		t.Fatalf("key-1 after a failed reload: %d, want 200", code)
	}
	if ev, err := events.Next(); err != nil || ev.Data != "still key-1" {
		t.Fatalf("stream: %+v, %v", ev, err)
	}

	// Step 2: key-2 only. key-1 tokens are refused from now on, but the
	// stream opened with one was authenticated when it opened: it stays.
	writeJWKS(t, file, key2)
	hup()
	p.stdout.waitLine(t, regexp.MustCompile(`"msg":"keys reloaded".*"kids":\["key-2"\]`))
	resp, err := http.Get(p.url + "/notice?token=" + key1.token(t, "rota"))
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, resp, http.StatusUnauthorized, "unknown key id")
	if code := publishStatus(t, p.url, key2.token(t, "pub", "publish"), "rota", "after step 2"); code != 200 {
		t.Fatalf("key-2 alone: %d, want 200", code)
	}
	if ev, err := events.Next(); err != nil || ev.Data != "after step 2" {
		t.Fatalf("stream opened with key-1 after key-1 was retired: %+v, %v; want it open and receiving", ev, err)
	}
}

// TestTokenCommandWithKeyFile: `noticed token` signs with the first HMAC
// key of a JWK Set and names it by kid, so the server picks the right one.
func TestTokenCommandWithKeyFile(t *testing.T) {
	t.Parallel()
	secretA, secretB := []byte("secret-a-secret-a-secret-a-secret-a"), []byte("secret-b-secret-b-secret-b-secret-b")
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: secretB, KeyID: "b"}, {Key: secretA, KeyID: "a"}}})
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, file, set)
	cmd := exec.Command(binary, "token", "-sub", "42", "-jwt-key-file", file)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.Config{KeyFile: set})
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(out))
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil || parsed.Header["kid"] != "b" {
		t.Fatalf("token header %v, %v; want kid b", parsed.Header, err)
	}
}
