package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"github.com/noticed/noticed/internal/notice"
)

// SecretSize is the length of a RandomSecret: 256 bits, the size of HS256's
// hash, so the key is never the weak link (RFC 7518 §3.2).
const SecretSize = 32

// MinSecretLen is the shortest HMAC secret noticed takes, from -jwt-secret
// or a JWK Set's oct key, to verify or to sign: RFC 7518 §3.2 asks for a
// key at least as long as the hash. A shorter one, a password say, can be
// found from one token by trying guesses offline, and then anyone can sign
// tokens for every user.
const MinSecretLen = SecretSize

var errShortSecret = errors.New("HMAC secret too short")

func shortSecret(n int) error {
	return fmt.Errorf("%w: %d bytes; it must be at least %d (256 bits, RFC 7518 §3.2): make one with `openssl rand -base64 32`", errShortSecret, n, MinSecretLen)
}

// RandomSecret returns a fresh HMAC secret for dev mode, where no secret was
// configured and tokens only need to outlive the process.
func RandomSecret() ([]byte, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("auth: random secret: %w", err)
	}
	return b, nil
}

// Sign makes an HS256 token for sub, for the `noticed token` command and the
// tokens dev mode prints. ttl <= 0 means no exp. Empty issuer or audience are
// left out. Tokens are checked here with the same rules Verify applies, so it
// cannot print a token that noticed would refuse for its content.
func Sign(secret []byte, sub string, ttl time.Duration, scopes []string, issuer, audience string) (string, error) {
	return SignWithKID(secret, "", sub, ttl, scopes, issuer, audience)
}

// SignWithKID is Sign with a kid header naming the secret, for a secret
// that is one of several in a JWK Set key file. An empty kid is left out.
func SignWithKID(secret []byte, kid, sub string, ttl time.Duration, scopes []string, issuer, audience string) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("auth: sign: %w", shortSecret(len(secret)))
	}
	if err := notice.ValidUser(sub); err != nil {
		return "", fmt.Errorf("auth: sign: sub: %w", err)
	}
	for _, s := range scopes {
		// The claim is space-separated, so a scope with white space in it
		// would come back as several.
		if s == "" || strings.ContainsFunc(s, isSpaceOrControl) {
			return "", fmt.Errorf("auth: sign: scope %q must be non-empty with no white space", s)
		}
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": sub, "iat": jwt.NewNumericDate(now)}
	if ttl > 0 {
		claims["exp"] = jwt.NewNumericDate(now.Add(ttl))
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	if issuer != "" {
		claims["iss"] = issuer
	}
	if audience != "" {
		claims["aud"] = audience
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	if kid != "" {
		t.Header["kid"] = kid
	}
	token, err := t.SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return token, nil
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }
