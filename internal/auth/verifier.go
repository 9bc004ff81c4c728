package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/noticed/noticed/internal/notice"
)

// maxTokenLen bounds the work one request can ask of the parser. Real tokens
// are well under 4 KiB; anything this long is not one of ours.
const maxTokenLen = 16 << 10

// Config says which tokens a Verifier accepts.
type Config struct {
	Secret       []byte        // HMAC secret (-jwt-secret)
	PublicKeyPEM []byte        // RSA, ECDSA or Ed25519 public key or certificate (-jwt-key-file)
	Issuer       string        // when set, iss must equal it (-jwt-issuer)
	Audience     string        // when set, aud must contain it (-jwt-audience)
	Leeway       time.Duration // clock skew allowed on exp and nbf
}

// Verifier checks tokens against one key. It is safe for concurrent use.
type Verifier struct {
	key     any
	methods []string
	issuer  string
	parser  *jwt.Parser
}

// NewVerifier returns a Verifier for cfg. Exactly one of Secret and
// PublicKeyPEM must be set: a server that silently preferred one would leave
// an operator unsure which key is live.
func NewVerifier(cfg Config) (*Verifier, error) {
	hasSecret, hasKey := len(cfg.Secret) > 0, len(cfg.PublicKeyPEM) > 0
	if hasSecret == hasKey {
		return nil, errors.New("auth: set exactly one of a JWT secret and a JWT public key")
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("auth: JWT leeway must not be negative")
	}
	v := &Verifier{issuer: cfg.Issuer}
	if hasSecret {
		// A copy, so a caller reusing its buffer cannot change the key.
		v.key, v.methods = bytes.Clone(cfg.Secret), hmacMethods
	} else {
		key, methods, err := parsePublicKey(cfg.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		v.key, v.methods = key, methods
	}
	// exp is deliberately not required: long-lived service tokens are a
	// choice the issuer makes. jwt still enforces exp and nbf when present.
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Algorithms returns the JWT algorithms this Verifier accepts, for the
// start-up log line.
func (v *Verifier) Algorithms() []string {
	return slices.Clone(v.methods)
}

// Verify checks token and returns its claims. Every error wraps exactly one of
// the package's sentinels.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenLen)
	}
	var tc tokenClaims
	parsed, err := v.parser.ParseWithClaims(token, &tc, v.keyFunc)
	if err != nil {
		return nil, v.classify(err, parsed, &tc)
	}
	// Only now is the payload trusted enough to judge. The raw bytes are
	// checked for UTF-8 because encoding/json would quietly turn invalid
	// bytes into U+FFFD, and then two different subs could name one user.
	var sub string
	if !utf8.Valid(tc.Subject) || json.Unmarshal(tc.Subject, &sub) != nil || notice.ValidUser(sub) != nil {
		return nil, fmt.Errorf("%w: sub must be a string of 1 to %d bytes of UTF-8 without control characters, white space, { or }",
			ErrSubject, notice.MaxUserLen)
	}
	scopes, err := parseScope(tc.Scope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	c := &Claims{Subject: sub, Scopes: scopes}
	if tc.ExpiresAt != nil {
		c.ExpiresAt = tc.ExpiresAt.Time
	}
	return c, nil
}

// keyFunc repeats the algorithm check that WithValidMethods already made,
// because it is the one place the key is handed out and must not depend on a
// parser option staying in place.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if !slices.Contains(v.methods, t.Method.Alg()) {
		return nil, errAlgorithm
	}
	return v.key, nil
}

var errAlgorithm = errors.New("algorithm not allowed for the configured key")

// classify maps a jwt error onto our sentinels. The jwt error itself is not
// wrapped: its text can quote the token's header (the alg name, say), and our
// messages must not carry token text.
func (v *Verifier) classify(err error, t *jwt.Token, tc *tokenClaims) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: not a well-formed JWT", ErrMalformed)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		if t == nil || t.Method == nil || !slices.Contains(v.methods, t.Method.Alg()) {
			return fmt.Errorf("%w: %w", ErrSignature, errAlgorithm)
		}
		return fmt.Errorf("%w: signature does not match the configured key", ErrSignature)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: exp is in the past", ErrExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: nbf is in the future", ErrNotYetValid)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("%w: iss does not match", ErrIssuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("%w: aud does not match", ErrAudience)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// jwt says only that some claim is missing; only iss and aud can be
		// required here, so the payload tells which.
		if v.issuer != "" && tc.Issuer == "" {
			return fmt.Errorf("%w: iss is missing", ErrIssuer)
		}
		return fmt.Errorf("%w: aud is missing", ErrAudience)
	}
	return fmt.Errorf("%w: claims could not be checked", ErrMalformed)
}
