package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// provider is an identity provider's JWKS endpoint: it serves the public
// halves of the keys it holds, counts the fetches, and can rotate its
// keys or go down.
type provider struct {
	srv     *httptest.Server
	fetches atomic.Int64
	down    atomic.Bool

	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey // by kid
}

func newProvider(t *testing.T, kids ...string) *provider {
	t.Helper()
	p := &provider{keys: map[string]*ecdsa.PrivateKey{}}
	for _, kid := range kids {
		p.add(kid)
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		if p.down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		var set jose.JSONWebKeySet
		for kid, k := range p.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// add makes a key named kid and publishes it.
func (p *provider) add(kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	p.mu.Lock()
	p.keys[kid] = k
	p.mu.Unlock()
}

// rotate replaces every key with a new one named kid, as a provider
// that retires its old key at once.
func (p *provider) rotate(kid string) {
	p.mu.Lock()
	p.keys = map[string]*ecdsa.PrivateKey{}
	p.mu.Unlock()
	p.add(kid)
}

// token signs a token for sub with the key named kid.
func (p *provider) token(t *testing.T, kid, sub string) string {
	t.Helper()
	p.mu.Lock()
	k := p.keys[kid]
	p.mu.Unlock()
	if k == nil {
		k = ecKey() // a key the provider does not publish
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": sub, "exp": unix(time.Hour)})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newJWKSVerifier(t *testing.T, opts JWKSOptions) *Verifier {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	set, err := NewJWKS(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(set.Close)
	v, err := NewVerifier(Config{JWKS: set})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestJWKSRotation: a token signed with a key the provider started using
// after noticed fetched its set is accepted, without a restart, by the
// refresh its unknown kid causes; a token of the retired key is refused
// once the set was fetched again.
func TestJWKSRotation(t *testing.T) {
	p := newProvider(t, "k1")
	v := newJWKSVerifier(t, JWKSOptions{URLs: []string{p.srv.URL}})
	old := p.token(t, "k1", "alice")
	if c, err := v.Verify(old); err != nil || c.Subject != "alice" {
		t.Fatalf("token of the first key: %+v, %v", c, err)
	}
	if h := v.KeysHealth(); !h.Remote || !h.Fresh || h.Err != nil {
		t.Errorf("health after start: %+v; want remote and fresh", h)
	}

	p.rotate("k2")
	tok := p.token(t, "k2", "bob")
	c, err := v.Verify(tok)
	if err != nil || c.Subject != "bob" {
		t.Fatalf("token of the new key: %+v, %v; want accepted after a refresh", c, err)
	}
	if got := p.fetches.Load(); got != 2 {
		t.Errorf("fetches: %d; want 2 (start, then the new kid)", got)
	}
	// The retired key went with the refresh, and with it the verified
	// tokens it had checked.
	if _, err := v.Verify(old); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token of the retired key: %v; want %v", err, ErrUnknownKey)
	}
}

// TestJWKSUnknownKidFlood: tokens with made-up kids, many at once and one
// after the other, cause at most one fetch per UnknownKID interval.
func TestJWKSUnknownKidFlood(t *testing.T) {
	p := newProvider(t, "k1")
	v := newJWKSVerifier(t, JWKSOptions{URLs: []string{p.srv.URL}, UnknownKID: time.Hour})
	const n = 500
	toks := make([]string, n)
	for i := range toks {
		toks[i] = p.token(t, fmt.Sprintf("made-up-%d", i), "mallory")
	}
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for i := range toks {
		wg.Go(func() {
			if _, err := v.Verify(toks[i]); !errors.Is(err, ErrUnknownKey) {
				accepted.Add(1)
				t.Errorf("made-up kid: %v; want %v", err, ErrUnknownKey)
			}
		})
	}
	wg.Wait()
	// And the real key still works meanwhile, from the cache.
	if _, err := v.Verify(p.token(t, "k1", "alice")); err != nil {
		t.Errorf("real token during the flood: %v", err)
	}
	got := p.fetches.Load()
	t.Logf("%d tokens with unknown kids: %d fetches from the provider (1 at start)", n, got)
	if got > 2 {
		t.Errorf("fetches: %d; want at most 2 (start, and one for the flood, with -jwks-unknown-kid-interval 1h)", got)
	}
}

// TestJWKSProviderDown: while the provider is down, tokens are checked
// with the last good set, as before; once the set is older than MaxAge its
// keys expire, tokens (cached ones too) are refused and Health says why;
// when the provider is back, the next fetch brings them back.
func TestJWKSProviderDown(t *testing.T) {
	p := newProvider(t, "k1")
	const maxAge = 3 * time.Second
	v := newJWKSVerifier(t, JWKSOptions{URLs: []string{p.srv.URL}, Refresh: 100 * time.Millisecond, MaxAge: maxAge, UnknownKID: 50 * time.Millisecond})
	tok := p.token(t, "k1", "alice")
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	p.down.Store(true)
	downAt := time.Now()
	before := p.fetches.Load()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	waitFor(t, ctx, "a failed scheduled refresh", func() bool { return p.fetches.Load() > before+1 && !v.KeysHealth().Fresh })

	// Nothing changed for tokens: a cached one, and a fresh one checked
	// with the kept key.
	if h := v.KeysHealth(); h.Err != nil {
		t.Errorf("health with the provider down, keys %v old: %+v; want stale, no error", time.Since(downAt), h)
	}
	if _, err := v.Verify(tok); err != nil && time.Since(downAt) < maxAge-time.Second {
		t.Errorf("cached token with the provider down: %v", err)
	}
	if _, err := v.Verify(p.token(t, "k1", "carol")); err != nil && time.Since(downAt) < maxAge-time.Second {
		t.Errorf("new token with the provider down: %v", err)
	}

	waitFor(t, ctx, "the keys to expire", func() bool { return v.KeysHealth().Err != nil })
	if _, err := v.Verify(tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("cached token after the keys expired: %v; want %v", err, ErrUnknownKey)
	}
	t.Logf("keys expired %v after the provider went down: %v", time.Since(downAt).Round(100*time.Millisecond), v.KeysHealth().Err)

	p.down.Store(false)
	waitFor(t, ctx, "the provider to be fetched again", func() bool { h := v.KeysHealth(); return h.Fresh && h.Err == nil })
	if _, err := v.Verify(tok); err != nil {
		t.Errorf("token after the provider came back: %v", err)
	}
}

// TestJWKSRefused: a provider that cannot be fetched at start is an error
// naming it; a token without a kid, or with an HMAC alg, is refused.
func TestJWKSRefused(t *testing.T) {
	p := newProvider(t, "k1")
	p.down.Store(true)
	if _, err := NewJWKS(JWKSOptions{URLs: []string{p.srv.URL}}); !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("provider down at start: %v; want %v", err, ErrKeysUnavailable)
	}
	if _, err := NewJWKS(JWKSOptions{URLs: []string{"ftp://example.com/jwks"}}); err == nil {
		t.Error("ftp URL accepted")
	}
	p.down.Store(false)
	v := newJWKSVerifier(t, JWKSOptions{URLs: []string{p.srv.URL}})

	noKid := sign(t, jwt.SigningMethodES256, p.keys["k1"], jwt.MapClaims{"sub": "alice"})
	if _, err := v.Verify(noKid); !errors.Is(err, ErrNeedKid) {
		t.Errorf("token without kid: %v; want %v", err, ErrNeedKid)
	}
	hmac := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"})
	hmac.Header["kid"] = "k1"
	s, _ := hmac.SignedString([]byte("k1"))
	if _, err := v.Verify(s); !errors.Is(err, ErrSignature) {
		t.Errorf("HS256 token naming the provider's key: %v; want %v", err, ErrSignature)
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// TestJWKSTwoProviders: keys of several URLs are used together; an
// unknown kid refreshes them all, within the one limit.
func TestJWKSTwoProviders(t *testing.T) {
	a, b := newProvider(t, "a1"), newProvider(t, "b1")
	v := newJWKSVerifier(t, JWKSOptions{URLs: []string{a.srv.URL, b.srv.URL}})
	for _, tok := range []string{a.token(t, "a1", "alice"), b.token(t, "b1", "bob")} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("token of one provider's key: %v", err)
		}
	}
	b.add("b2")
	if _, err := v.Verify(b.token(t, "b2", "bob")); err != nil {
		t.Errorf("token of the second provider's new key: %v", err)
	}
	if _, err := v.Verify(a.token(t, "nobody", "mallory")); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("made-up kid right after a refresh: %v; want %v without a fetch", err, ErrUnknownKey)
	}
	if fa, fb := a.fetches.Load(), b.fetches.Load(); fa > 2 || fb != 2 {
		t.Errorf("fetches: %d and %d; want at most 2 and 2 (start, the new kid)", fa, fb)
	}
}
