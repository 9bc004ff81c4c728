package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// More keys for rotation: a second of each kind.
var (
	ecKey2 = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		return k
	})
)

var secretA, secretB = []byte("secret-A-secret-A-secret-A-secret-A"), []byte("secret-B-secret-B-secret-B-secret-B")

// jwk is one JWK Set member as an identity provider publishes it.
func jwk(t testing.TB, pub any, kid, alg string) json.RawMessage {
	t.Helper()
	b, err := jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jwks(t testing.TB, keys ...json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signKid makes a token with a kid header.
func signKid(t testing.TB, m jwt.SigningMethod, key any, kid any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// namedPEM is a PKIX public key with a "kid" header line.
func namedPEM(t testing.TB, pub crypto.PublicKey, kid string) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": kid}, Bytes: der})
}

func thumb(t testing.TB, pub any) string {
	t.Helper()
	s, err := thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKeyFileForms(t *testing.T) {
	t.Parallel()
	ec1, ec2, ed1 := &ecKey().PublicKey, &ecKey2().PublicKey, edKey().Public()
	twoPEM := append(pkixPEM(t, ec1), pkixPEM(t, ec2)...)
	encKey := json.RawMessage(`{"kty":"RSA","use":"enc","kid":"e","n":"AQAB","e":"AQAB"}`)
	unknownKty := json.RawMessage(`{"kty":"XYZ","kid":"x"}`)
	x25519 := json.RawMessage(`{"kty":"OKP","crv":"X25519","use":"enc","kid":"x","x":"AAAA"}`)
	private, err := jose.JSONWebKey{Key: ecKey(), KeyID: "p"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		file    []byte
		wantIDs []string // nil: an error is wanted
	}{
		{"two PEM keys, unnamed: thumbprints", twoPEM, []string{thumb(t, ec1), thumb(t, ec2)}},
		{"PEM keys named by a kid header", append(namedPEM(t, ec1, "k1"), namedPEM(t, ed1, "k2")...), []string{"k1", "k2"}},
		{"certificate chain: the leaf only", chainPEM(t), []string{thumb(t, ec1)}},
		{"two unrelated certificates: both", append(selfSignedPEM(t), certPEM(t, ecKey2())...), []string{thumb(t, ec1), thumb(t, ec2)}},
		{"JWKS of every kind", jwks(t, jwk(t, &rsaKey().PublicKey, "r", ""), jwk(t, ec1, "e", "ES256"), jwk(t, ed1, "o", ""), jwk(t, secretA, "s", "HS256")), []string{"r", "e", "o", "s"}},
		{"JWKS without kids", jwks(t, jwk(t, ec1, "", ""), jwk(t, secretA, "", "")), []string{thumb(t, ec1), ""}},
		{"JWKS passes over keys for encryption and unknown types", jwks(t, encKey, unknownKty, x25519, jwk(t, ec1, "e", "")), []string{"e"}},
		{"same kid, different families", jwks(t, jwk(t, ec1, "k", ""), jwk(t, ed1, "k", "")), []string{"k", "k"}},

		{"empty", nil, nil},
		{"JWKS with no usable key", jwks(t, encKey), nil},
		{"JWKS with no keys member", []byte(`{"kty":"oct"}`), nil},
		{"JWKS not JSON", []byte(`{"keys":[`), nil},
		{"JWKS private key", jwks(t, private), nil},
		{"JWKS alg of another family", jwks(t, jwk(t, ec1, "e", "RS256")), nil},
		{"JWKS alg of another curve", jwks(t, jwk(t, ec1, "e", "ES384")), nil},
		{"JWKS broken key", jwks(t, json.RawMessage(`{"kty":"EC","crv":"P-256","x":"!","y":"!"}`)), nil},
		{"JWKS empty secret", jwks(t, json.RawMessage(`{"kty":"oct","k":""}`)), nil},
		{"JWKS 31-byte secret", jwks(t, jwk(t, secretA[:31], "s", "HS256")), nil},
		{"JWKS 32-byte secret", jwks(t, jwk(t, secretA[:32], "s", "HS256")), []string{"s"}},
		{"JWKS short secret beside a good one", jwks(t, jwk(t, secretA, "a", ""), jwk(t, []byte("short"), "b", "")), nil},
		{"two keys, one kid", jwks(t, jwk(t, ec1, "k", ""), jwk(t, ec2, "k", "")), nil},
		{"the same key twice, unnamed", append(pkixPEM(t, ec1), pkixPEM(t, ec1)...), nil},
		{"PEM private key after a public one", append(pkixPEM(t, ec1), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})...), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(Config{KeyFile: tt.file})
			if tt.wantIDs == nil {
				if err == nil {
					t.Fatalf("NewVerifier accepted it: keys %q", v.KeyIDs())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := v.KeyIDs(); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("KeyIDs = %q, want %q", got, tt.wantIDs)
			}
		})
	}
}

func certPEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "other.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// chainPEM is a leaf with ecKey's public key, signed by a CA (ecKey2),
// followed by the CA's certificate: the file a TLS server would use.
func chainPEM(t testing.TB) []byte {
	t.Helper()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "ca.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &ecKey2().PublicKey, ecKey2())
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: "issuer.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &ecKey().PublicKey, ecKey2())
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
}

// TestKeyChoice: a token is checked against the one key its kid names;
// without a kid, against the only key of its algorithm; never against a
// key of another family.
func TestKeyChoice(t *testing.T) {
	t.Parallel()
	ec1, ec2, ed1 := &ecKey().PublicKey, &ecKey2().PublicKey, edKey().Public()
	rotating := Config{KeyFile: jwks(t, jwk(t, ec1, "old", ""), jwk(t, ec2, "new", ""))}
	mixed := Config{KeyFile: jwks(t, jwk(t, ec1, "e", ""), jwk(t, ed1, "o", ""))}
	oneNamed := Config{KeyFile: jwks(t, jwk(t, ec1, "only", ""))}
	onePEM := Config{KeyFile: pkixPEM(t, ec1)}
	twoPEM := Config{KeyFile: append(pkixPEM(t, ec1), pkixPEM(t, ec2)...)}
	secrets := Config{KeyFile: jwks(t, jwk(t, secretA, "a", ""), jwk(t, secretB, "b", "HS256"))}
	withRSA := Config{KeyFile: jwks(t, jwk(t, &rsaKey().PublicKey, "r", ""))}
	sub := jwt.MapClaims{"sub": "42"}
	es := jwt.SigningMethodES256

	tests := []struct {
		name  string
		cfg   Config
		token string
		want  error
	}{
		{"kid names the old key", rotating, signKid(t, es, ecKey(), "old", sub), nil},
		{"kid names the new key", rotating, signKid(t, es, ecKey2(), "new", sub), nil},
		{"kid names the other key", rotating, signKid(t, es, ecKey(), "new", sub), ErrSignature},
		{"kid names no key", rotating, signKid(t, es, ecKey(), "gone", sub), ErrUnknownKey},
		{"no kid, two keys of its algorithm", rotating, sign(t, es, ecKey(), sub), ErrNeedKid},
		{"kid not a string", rotating, signKid(t, es, ecKey(), 7, sub), ErrMalformed},
		{"no kid, one key of its algorithm", mixed, sign(t, jwt.SigningMethodEdDSA, edKey(), sub), nil},
		{"kid of another family's key", mixed, signKid(t, jwt.SigningMethodEdDSA, edKey(), "e", sub), ErrSignature},
		{"no kid, one named key", oneNamed, sign(t, es, ecKey(), sub), nil},
		{"wrong kid, one named key", oneNamed, signKid(t, es, ecKey(), "other", sub), ErrUnknownKey},
		{"any kid, one unnamed PEM key", onePEM, signKid(t, es, ecKey(), "issuer-chose-this", sub), nil},
		{"two unnamed PEM keys, thumbprint kid", twoPEM, signKid(t, es, ecKey2(), thumb(t, ec2), sub), nil},
		{"two unnamed PEM keys, other kid", twoPEM, signKid(t, es, ecKey2(), "k", sub), ErrUnknownKey},
		{"two unnamed PEM keys, no kid", twoPEM, sign(t, es, ecKey2(), sub), ErrNeedKid},
		{"rotating secrets, kid b", secrets, signKid(t, jwt.SigningMethodHS256, secretB, "b", sub), nil},
		{"rotating secrets, kid a with b's secret", secrets, signKid(t, jwt.SigningMethodHS256, secretB, "a", sub), ErrSignature},
		{"secret pinned to HS256 by its alg", secrets, signKid(t, jwt.SigningMethodHS512, secretB, "b", sub), ErrSignature},
		{"secret not pinned", secrets, signKid(t, jwt.SigningMethodHS512, secretA, "a", sub), nil},
		{"-jwt-secret ignores kid", Config{Secret: testSecret}, signKid(t, jwt.SigningMethodHS256, testSecret, "x", sub), nil},
		{"HS256 keyed with an RSA JWK's public key", withRSA, signKid(t, jwt.SigningMethodHS256, x509.MarshalPKCS1PublicKey(&rsaKey().PublicKey), "r", sub), ErrSignature},
		{"alg none with a kid", rotating, noneToken(t, sub), ErrSignature},
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
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil && (got != nil || leaksToken(err.Error(), tt.token)) {
				t.Errorf("Verify returned %+v, %q", got, err)
			}
			if tt.want != nil && !Refused(err) {
				t.Errorf("Refused(%v) = false", err)
			}
		})
	}
}

func TestReloadKeys(t *testing.T) {
	t.Parallel()
	ec1, ec2 := &ecKey().PublicKey, &ecKey2().PublicKey
	sub := jwt.MapClaims{"sub": "42"}
	tok1 := signKid(t, jwt.SigningMethodES256, ecKey(), "k1", sub)
	tok2 := signKid(t, jwt.SigningMethodES256, ecKey2(), "k2", sub)
	v, err := NewVerifier(Config{KeyFile: jwks(t, jwk(t, ec1, "k1", ""))})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(tok string, want error) {
		t.Helper()
		if _, err := v.Verify(tok); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("Verify = %v, want %v", err, want)
		}
	}
	verify(tok1, nil)
	verify(tok2, ErrUnknownKey)

	// Tokens are verified all the while keys are swapped; -race checks
	// the swap.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := v.Verify(tok1); err != nil {
					t.Errorf("k1 refused while both keys are in every set: %v", err)
					return
				}
			}
		})
	}
	both := jwks(t, jwk(t, ec1, "k1", ""), jwk(t, ec2, "k2", ""))
	for range 20 {
		if err := v.ReloadKeys(both); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	verify(tok2, nil)
	if got := v.KeyIDs(); !slices.Equal(got, []string{"k1", "k2"}) {
		t.Errorf("KeyIDs = %q", got)
	}

	if err := v.ReloadKeys([]byte(`{"keys":[{"kty":"EC"`)); err == nil {
		t.Fatal("a broken file was loaded")
	}
	verify(tok1, nil) // the old keys stay
	verify(tok2, nil)

	if err := v.ReloadKeys(jwks(t, jwk(t, ec2, "k2", ""))); err != nil {
		t.Fatal(err)
	}
	verify(tok1, ErrUnknownKey)
	verify(tok2, nil)

	s, err := NewVerifier(Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadKeys(both); err == nil || !strings.Contains(err.Error(), "nothing to reload") {
		t.Errorf("reloading a secret: %v", err)
	}
}

func TestSigningSecret(t *testing.T) {
	t.Parallel()
	file := jwks(t, jwk(t, &ecKey().PublicKey, "e", ""), jwk(t, secretB, "b", ""), jwk(t, secretA, "a", ""))
	secret, kid, err := SigningSecret(file)
	if err != nil || kid != "b" || string(secret) != string(secretB) {
		t.Fatalf("SigningSecret = %q, %q, %v; want the first secret, b", secret, kid, err)
	}
	tok, err := SignWithKID(secret, kid, "42", time.Minute, nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(Config{KeyFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Errorf("a token signed with the file's secret: %v", err)
	}
	if _, _, err := SigningSecret(pkixPEM(t, &ecKey().PublicKey)); err == nil {
		t.Error("a PEM file gave a secret")
	}
}

func TestMaxUserLen(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(Config{Secret: testSecret, MaxUserLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(hs256(t, jwt.MapClaims{"sub": "12345678"})); err != nil {
		t.Errorf("8-byte sub: %v", err)
	}
	_, err = v.Verify(hs256(t, jwt.MapClaims{"sub": "123456789"}))
	if !errors.Is(err, ErrSubject) || !strings.Contains(err.Error(), "1 to 8 bytes") {
		t.Errorf("9-byte sub: %v, want ErrSubject naming the limit", err)
	}
}
