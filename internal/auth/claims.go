package auth

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ScopePublish is the scope a token needs to publish over HTTP.
const ScopePublish = "publish"

// Claims is what noticed learns from a verified token.
type Claims struct {
	Subject   string    // the user id; passes notice.ValidUser
	Scopes    []string  // empty when the token has no scope claim
	ExpiresAt time.Time // zero when the token has no exp: it never expires
}

// Can reports whether the token was granted scope.
func (c *Claims) Can(scope string) bool {
	return c != nil && slices.Contains(c.Scopes, scope)
}

// tokenClaims is the token's payload as the jwt library decodes it. sub and
// scope are kept raw and read only after the signature has been checked, so
// that an unauthenticated token can learn nothing about how its content would
// be judged, and so a non-string sub is reported as a bad subject rather than
// a malformed token.
type tokenClaims struct {
	Issuer    string           `json:"iss,omitempty"`
	Subject   json.RawMessage  `json:"sub,omitempty"`
	Audience  jwt.ClaimStrings `json:"aud,omitempty"`
	ExpiresAt *jwt.NumericDate `json:"exp,omitempty"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat,omitempty"`
	Scope     json.RawMessage  `json:"scope,omitempty"`
}

var _ jwt.Claims = (*tokenClaims)(nil)

func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore, nil }
func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt, nil }
func (c *tokenClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error)       { return c.Audience, nil }

// GetSubject is never used for validation (noticed checks sub itself), but
// the interface wants it.
func (c *tokenClaims) GetSubject() (string, error) {
	var s string
	err := json.Unmarshal(c.Subject, &s)
	return s, err
}

var errScopeType = errors.New("scope claim must be a string or an array of strings")

// parseScope accepts both forms the contract allows: the OAuth 2.0 style
// space-separated string (RFC 8693 §4.2) and the JSON array some issuers use.
// Anything else is refused rather than read as "no scopes": an issuer that
// writes a number or an object here is misconfigured, and saying so beats a
// puzzling 403 later.
func parseScope(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return strings.Fields(s), nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errScopeType
	}
	// Empty entries grant nothing, and dropping them keeps Can("") false.
	return slices.DeleteFunc(list, func(s string) bool { return s == "" }), nil
}
