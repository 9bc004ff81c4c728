package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	secretCfg := Config{Secret: testSecret}
	rsaCfg := Config{KeyFile: pkixPEM(t, &rsaKey().PublicKey)}
	ecCfg := Config{KeyFile: pkixPEM(t, &ecKey().PublicKey)}
	edCfg := Config{KeyFile: pkixPEM(t, edKey().Public())}
	issCfg := Config{Secret: testSecret, Issuer: "https://id.example", Audience: "noticed"}
	sub := jwt.MapClaims{"sub": "42"}

	tests := []struct {
		name   string
		cfg    Config
		token  string
		want   error
		wantSc []string
	}{
		{"valid HS256", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "exp": unix(time.Hour)}), nil, nil},
		{"valid HS512", secretCfg, sign(t, jwt.SigningMethodHS512, testSecret, sub), nil, nil},
		{"valid RS256", rsaCfg, sign(t, jwt.SigningMethodRS256, rsaKey(), sub), nil, nil},
		{"valid PS384", rsaCfg, sign(t, jwt.SigningMethodPS384, rsaKey(), sub), nil, nil},
		{"valid ES256", ecCfg, sign(t, jwt.SigningMethodES256, ecKey(), sub), nil, nil},
		{"valid EdDSA", edCfg, sign(t, jwt.SigningMethodEdDSA, edKey(), sub), nil, nil},
		{"unicode sub", secretCfg, hs256(t, jwt.MapClaims{"sub": "józef@example.org"}), nil, nil},

		{"no token", secretCfg, "", ErrNoToken, nil},
		{"garbage", secretCfg, "not-a-jwt", ErrMalformed, nil},
		{"three garbage parts", secretCfg, "a.b.c", ErrMalformed, nil},
		{"huge", secretCfg, strings.Repeat("a", maxTokenLen+1), ErrMalformed, nil},
		{"alg none", secretCfg, noneToken(t, sub), ErrSignature, nil},
		{"alg none, RSA key", rsaCfg, noneToken(t, sub), ErrSignature, nil},
		{"unknown alg", secretCfg, "eyJhbGciOiJYWVoifQ.eyJzdWIiOiI0MiJ9.c2ln", ErrSignature, nil},
		{"HS256 keyed with the RSA public PEM", rsaCfg, sign(t, jwt.SigningMethodHS256, rsaCfg.KeyFile, sub), ErrSignature, nil},
		{"RS256 against a secret", secretCfg, sign(t, jwt.SigningMethodRS256, rsaKey(), sub), ErrSignature, nil},
		{"ES256 against an RSA key", rsaCfg, sign(t, jwt.SigningMethodES256, ecKey(), sub), ErrSignature, nil},
		{"EdDSA against a P-256 key", ecCfg, sign(t, jwt.SigningMethodEdDSA, edKey(), sub), ErrSignature, nil},
		{"wrong secret", secretCfg, sign(t, jwt.SigningMethodHS256, []byte("another secret, also 32 bytes!!"), sub), ErrSignature, nil},
		{"tampered payload", secretCfg, tamper(hs256(t, sub)), ErrSignature, nil},
		{"expired", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "exp": unix(-5 * time.Second)}), ErrExpired, nil},
		{"expired, within leeway", Config{Secret: testSecret, Leeway: time.Minute}, hs256(t, jwt.MapClaims{"sub": "42", "exp": unix(-5 * time.Second)}), nil, nil},
		{"expired, beyond leeway", Config{Secret: testSecret, Leeway: time.Second}, hs256(t, jwt.MapClaims{"sub": "42", "exp": unix(-time.Minute)}), ErrExpired, nil},
		{"nbf in the future", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "nbf": unix(time.Hour)}), ErrNotYetValid, nil},
		{"nbf within leeway", Config{Secret: testSecret, Leeway: time.Minute}, hs256(t, jwt.MapClaims{"sub": "42", "nbf": unix(5 * time.Second)}), nil, nil},
		{"exp not a number", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "exp": "soon"}), ErrMalformed, nil},

		{"issuer and audience match", issCfg, hs256(t, jwt.MapClaims{"sub": "42", "iss": "https://id.example", "aud": []string{"other", "noticed"}}), nil, nil},
		{"wrong issuer", issCfg, hs256(t, jwt.MapClaims{"sub": "42", "iss": "https://evil.example", "aud": "noticed"}), ErrIssuer, nil},
		{"missing issuer", issCfg, hs256(t, jwt.MapClaims{"sub": "42", "aud": "noticed"}), ErrIssuer, nil},
		{"wrong audience", issCfg, hs256(t, jwt.MapClaims{"sub": "42", "iss": "https://id.example", "aud": "other"}), ErrAudience, nil},
		{"missing audience", issCfg, hs256(t, jwt.MapClaims{"sub": "42", "iss": "https://id.example"}), ErrAudience, nil},
		{"issuer not configured, any accepted", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "iss": "anyone", "aud": "anything"}), nil, nil},

		{"missing sub", secretCfg, hs256(t, jwt.MapClaims{"exp": unix(time.Hour)}), ErrSubject, nil},
		{"empty sub", secretCfg, hs256(t, jwt.MapClaims{"sub": ""}), ErrSubject, nil},
		{"null sub", secretCfg, hs256(t, jwt.MapClaims{"sub": nil}), ErrSubject, nil},
		{"numeric sub", secretCfg, hs256(t, jwt.MapClaims{"sub": 42}), ErrSubject, nil},
		{"200-byte sub", secretCfg, hs256(t, jwt.MapClaims{"sub": strings.Repeat("x", 200)}), nil, nil},
		{"201-byte sub", secretCfg, hs256(t, jwt.MapClaims{"sub": strings.Repeat("x", 201)}), ErrSubject, nil},
		{"sub with space", secretCfg, hs256(t, jwt.MapClaims{"sub": "a b"}), ErrSubject, nil},
		{"sub with braces", secretCfg, hs256(t, jwt.MapClaims{"sub": "{x}"}), ErrSubject, nil},
		{"sub with control char", secretCfg, hs256(t, jwt.MapClaims{"sub": "a\x01b"}), ErrSubject, nil},
		{"sub with newline", secretCfg, hs256(t, jwt.MapClaims{"sub": "a\nb"}), ErrSubject, nil},
		{"sub invalid UTF-8", secretCfg, signRaw(t, testSecret, "{\"sub\":\"a\xffb\"}"), ErrMalformed, nil},

		{"scope string", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "scope": " read  publish "}), nil, []string{"read", "publish"}},
		{"scope array", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "scope": []string{"publish", "", "read"}}), nil, []string{"publish", "read"}},
		{"scope null", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "scope": nil}), nil, nil},
		{"scope number", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "scope": 7}), ErrMalformed, nil},
		{"scope mixed array", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "scope": []any{"publish", 1}}), ErrMalformed, nil},
		{"scope object", secretCfg, hs256(t, jwt.MapClaims{"sub": "42", "scope": map[string]any{"publish": true}}), ErrMalformed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Verify(tt.token)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify err = %v, want %v", err, tt.want)
			}
			if err != nil {
				if got != nil {
					t.Errorf("Verify returned claims %+v with an error", got)
				}
				if leaksToken(err.Error(), tt.token) {
					t.Errorf("error %q quotes the token", err)
				}
				return
			}
			if got.Subject == "" {
				t.Errorf("Subject is empty")
			}
			if !slices.Equal(got.Scopes, tt.wantSc) {
				t.Errorf("Scopes = %q, want %q", got.Scopes, tt.wantSc)
			}
		})
	}
}

// tamper changes the payload after signing without breaking its encoding.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = strings.Replace(parts[1], "eyJzdWIiOiI0MiJ9", "eyJzdWIiOiI0MyJ9", 1) // {"sub":"42"} -> {"sub":"43"}
	return strings.Join(parts, ".")
}

func TestVerifyClaims(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)

	got, err := v.Verify(hs256(t, jwt.MapClaims{"sub": "alice", "exp": exp.Unix(), "scope": "publish"}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "alice" || !got.ExpiresAt.Equal(exp) || !got.Can(ScopePublish) {
		t.Errorf("got %+v, want sub alice, exp %v, publish", got, exp)
	}

	got, err = v.Verify(hs256(t, jwt.MapClaims{"sub": "bob"}))
	if err != nil {
		t.Fatal(err)
	}
	if !got.ExpiresAt.IsZero() {
		t.Errorf("ExpiresAt = %v, want zero without exp", got.ExpiresAt)
	}
}

func TestCan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		claims *Claims
		scope  string
		want   bool
	}{
		{"granted", &Claims{Scopes: []string{"read", "publish"}}, "publish", true},
		{"prefix is not a match", &Claims{Scopes: []string{"publisher"}}, "publish", false},
		{"case matters", &Claims{Scopes: []string{"Publish"}}, "publish", false},
		{"no scopes", &Claims{}, "publish", false},
		{"empty scope never granted", &Claims{Scopes: []string{"publish"}}, "", false},
		{"nil claims", nil, "publish", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.claims.Can(tt.scope); got != tt.want {
				t.Errorf("Can(%q) = %v, want %v", tt.scope, got, tt.want)
			}
		})
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrNoToken, "no_token"},
		{ErrMalformed, "malformed"},
		{ErrSignature, "signature"},
		{ErrExpired, "expired"},
		{ErrNotYetValid, "not_yet_valid"},
		{ErrIssuer, "issuer"},
		{ErrAudience, "audience"},
		{ErrSubject, "subject"},
		{errors.Join(errors.New("context"), ErrExpired), "expired"},
		{errors.New("something else"), "other"},
	}
	for _, tt := range tests {
		if got := Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// A token verified once is remembered, but not past its exp: the same
// token presented after it expired is refused, as it was never cached.
func TestRememberedTokenStillExpires(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Second).Truncate(time.Second).Add(time.Second)
	tok := hs256(t, jwt.MapClaims{"sub": "42", "exp": exp.Unix()})
	for range 3 {
		c, err := v.Verify(tok)
		if err != nil || c.Subject != "42" || !c.ExpiresAt.Equal(exp) {
			t.Fatalf("Verify = %+v, %v", c, err)
		}
	}
	for !time.Now().After(exp) {
		time.Sleep(20 * time.Millisecond) // the clock must pass exp
	}
	if _, err := v.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("Verify after exp = %v, want ErrExpired", err)
	}
}
