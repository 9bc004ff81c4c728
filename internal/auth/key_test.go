package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestNewVerifier(t *testing.T) {
	t.Parallel()
	rsaPub := &rsaKey().PublicKey
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(rsaPub)})
	ecPriv, err := x509.MarshalECPrivateKey(ecKey())
	if err != nil {
		t.Fatal(err)
	}
	params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}})

	tests := []struct {
		name        string
		cfg         Config
		wantErr     bool
		wantMethods []string
	}{
		{"secret", Config{Secret: testSecret}, false, []string{"HS256", "HS384", "HS512"}},
		{"1-byte secret", Config{Secret: []byte("s")}, true, nil},
		{"31-byte secret", Config{Secret: testSecret[:31]}, true, nil},
		{"RSA PKIX", Config{KeyFile: pkixPEM(t, rsaPub)}, false, rsaMethods},
		{"RSA PKCS1", Config{KeyFile: pkcs1}, false, rsaMethods},
		{"certificate", Config{KeyFile: selfSignedPEM(t)}, false, []string{"ES256"}},
		{"P-256", Config{KeyFile: pkixPEM(t, &ecKey().PublicKey)}, false, []string{"ES256"}},
		{"P-384", Config{KeyFile: pkixPEM(t, &p384.PublicKey)}, false, []string{"ES384"}},
		{"EC PARAMETERS block first", Config{KeyFile: append(params, pkixPEM(t, &ecKey().PublicKey)...)}, false, []string{"ES256"}},
		{"Ed25519", Config{KeyFile: pkixPEM(t, edKey().Public())}, false, []string{"EdDSA"}},
		{"neither", Config{}, true, nil},
		{"both", Config{Secret: testSecret, KeyFile: pkixPEM(t, rsaPub)}, true, nil},
		{"not PEM", Config{KeyFile: []byte("hunter2")}, true, nil},
		{"private key", Config{KeyFile: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecPriv})}, true, nil},
		{"corrupt key", Config{KeyFile: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})}, true, nil},
		{"negative leeway", Config{Secret: testSecret, Leeway: -time.Second}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewVerifier err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := v.Algorithms(); !slices.Equal(got, tt.wantMethods) {
				t.Errorf("Algorithms() = %v, want %v", got, tt.wantMethods)
			}
		})
	}
}

// selfSignedPEM is a P-256 certificate, to show a certificate's key is used.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey().PublicKey, ecKey())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCertificateVerifies(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(Config{KeyFile: selfSignedPEM(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodES256, ecKey(), jwt.MapClaims{"sub": "42"})); err != nil {
		t.Errorf("Verify = %v, want nil", err)
	}
}

// The secret is copied, so a caller reusing its buffer cannot change it.
func TestSecretCopied(t *testing.T) {
	t.Parallel()
	secret := []byte("a secret that will be overwritten")
	v, err := NewVerifier(Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "42"})
	clear(secret)
	if _, err := v.Verify(tok); err != nil {
		t.Errorf("Verify = %v, want nil", err)
	}
}
