package auth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/golang-jwt/jwt/v5"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/strictjson"
)

// FuzzVerify feeds Verify outside input. Each input is also re-signed with the
// test secret, because the fuzzer cannot forge a MAC: without that it would
// never get past the signature check to the claims, where noticed's own code is.
// Two verifiers judge each token: one with -jwt-secret, and one with a key
// file of two secrets told apart by kid (the test secret is "a").
func FuzzVerify(f *testing.F) {
	for _, c := range []jwt.MapClaims{
		{"sub": "42"},
		{"sub": "42", "exp": unix(time.Hour), "scope": "publish"},
		{"sub": "42", "scope": []string{"publish", "read"}},
		{"sub": "42", "exp": unix(-time.Hour)},
		{"sub": "42", "nbf": unix(time.Hour)},
		{"sub": "a b"},
		{"sub": 42},
		{"scope": 7},
	} {
		f.Add(hs256(f, c))
		f.Add(noneToken(f, c))
	}
	f.Add(sign(f, jwt.SigningMethodHS256, []byte("wrong"), jwt.MapClaims{"sub": "42"}))
	f.Add("")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJcdWQ4MDAifQ.")
	for _, payload := range []string{
		`{"sub":"bob","Sub":"alice"}`,
		`{"sub":"bob","sub":"alice"}`,
		`{"sub":"bob","s\u0075b":"alice"}`,
		`{"sub":"bob","Scope":"publish","ctx":{"k":1}}`,
		`{"sub":"\udc00"}`,
	} {
		f.Add(signRaw(f, testSecret, payload))
	}
	f.Add(signRawHeader(f, testSecret, `{"alg":"HS256","alg":"none"}`, `{"sub":"bob"}`))
	f.Add(signRawHeader(f, testSecret, `{"alg":"HS256","crit":["exp"]}`, `{"sub":"bob"}`))
	f.Add(signRaw(f, testSecret, `{"sub":"bob","exp":"9999999999"}`))
	for _, kid := range []any{"a", "b", "c", 7, nil, ""} {
		f.Add(signKid(f, jwt.SigningMethodHS256, testSecret, kid, jwt.MapClaims{"sub": "42"}))
	}

	v, err := NewVerifier(Config{Secret: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	rotating, err := NewVerifier(Config{KeyFile: jwks(f, jwk(f, testSecret, "a", ""), jwk(f, secretB, "b", "HS256"))})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		check(t, v, tok)
		check(t, rotating, tok)
		if i := strings.LastIndexByte(tok, '.'); i >= 0 && strings.Count(tok, ".") == 2 {
			sig, err := jwt.SigningMethodHS256.Sign(tok[:i], testSecret)
			if err != nil {
				t.Fatal(err)
			}
			resigned := tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
			check(t, v, resigned)
			check(t, rotating, resigned)
		}
	})
}

func check(t *testing.T, v *Verifier, tok string) {
	got, err := v.Verify(tok)
	if err != nil {
		if got != nil {
			t.Fatalf("Verify returned claims and %v", err)
		}
		if Reason(err) == "other" {
			t.Fatalf("Verify error %v wraps none of the sentinels", err)
		}
		if len(tok) > 8 && strings.Contains(err.Error(), tok) {
			t.Fatalf("error %q quotes the token", err)
		}
		return
	}
	if err := notice.ValidUser(got.Subject); err != nil {
		t.Fatalf("accepted sub %q: %v", got.Subject, err)
	}
	// The sub accepted is the one an exact reading of the payload finds:
	// no other member (another case, a second sub) may have stood in.
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("accepted a payload that is not base64url: %v", err)
	}
	var sub string
	if err := strictjson.Object(payload, func(name string, v jsontext.Value) error {
		if name == "sub" {
			return json.Unmarshal(v, &sub)
		}
		return nil
	}); err != nil || sub != got.Subject {
		t.Fatalf("accepted sub %q, but the payload read exactly says %q (%v)", got.Subject, sub, err)
	}
	if got.Can("") {
		t.Fatalf("accepted token grants the empty scope: %q", got.Scopes)
	}
}
