package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A short HMAC secret is refused wherever one comes in (RFC 7518 §3.2): a
// 1-byte -jwt-secret used to start a server whose tokens anyone could forge
// after guessing offline.
func TestShortSecretsRefused(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 16, MinSecretLen - 1} {
		secret := []byte(strings.Repeat("k", n))
		if _, err := NewVerifier(Config{Secret: secret}); n > 0 && !errors.Is(err, errShortSecret) {
			t.Errorf("NewVerifier with a %d-byte secret: %v, want errShortSecret", n, err)
		}
		if _, err := Sign(secret, "42", time.Hour, nil, "", ""); !errors.Is(err, errShortSecret) {
			t.Errorf("Sign with a %d-byte secret: %v, want errShortSecret", n, err)
		}
		file := jwks(t, jwk(t, []byte(strings.Repeat("k", max(n, 1))), "s", "HS256"))
		if _, err := NewVerifier(Config{KeyFile: file}); !errors.Is(err, errShortSecret) {
			t.Errorf("NewVerifier with a %d-byte oct key: %v, want errShortSecret", n, err)
		}
		if _, _, err := SigningSecret(file); !errors.Is(err, errShortSecret) {
			t.Errorf("SigningSecret with a %d-byte oct key: %v, want errShortSecret", n, err)
		}
	}
	secret := []byte(strings.Repeat("k", MinSecretLen))
	if _, err := NewVerifier(Config{Secret: secret}); err != nil {
		t.Errorf("NewVerifier with a %d-byte secret: %v", MinSecretLen, err)
	}
	if _, err := Sign(secret, "42", time.Hour, nil, "", ""); err != nil {
		t.Errorf("Sign with a %d-byte secret: %v", MinSecretLen, err)
	}
	dev, err := RandomSecret()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(Config{Secret: dev}); err != nil {
		t.Errorf("NewVerifier with dev mode's random secret: %v", err)
	}
}
