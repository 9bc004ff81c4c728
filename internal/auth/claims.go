package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/golang-jwt/jwt/v5"

	"github.com/noticed/noticed/internal/strictjson"
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

// tokenClaims is the token's payload as the jwt library decodes it, through
// UnmarshalJSON. sub and scope are kept raw and read only after the
// signature has been checked, so that an unauthenticated token can learn
// nothing about how its content would be judged, and so a non-string sub is
// reported as a bad subject rather than a malformed token.
type tokenClaims struct {
	Issuer    string
	Subject   json.RawMessage
	Audience  jwt.ClaimStrings
	ExpiresAt *jwt.NumericDate
	NotBefore *jwt.NumericDate
	IssuedAt  *jwt.NumericDate
	Scope     json.RawMessage
}

// UnmarshalJSON reads the claims the way RFC 7519 names them: exactly, case
// and all (§4: "Sub" is another claim, unknown and ignored, never sub), and
// each once: encoding/json, which the library would use, matches names
// without regard to case and lets the last of two win, so a signed
// {"sub":"bob","Sub":"alice"} was alice's. A payload with a name twice, or
// with text that is not UTF-8, is refused whole. Dates are numbers only
// (§2, NumericDate): the library would also take a number in a string.
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	err := strictjson.Object(b, func(name string, v jsontext.Value) error {
		var err error
		switch name {
		case "iss":
			if v.Kind() != '"' {
				return errIssuerType
			}
			err = json.Unmarshal(v, &c.Issuer)
		case "sub":
			c.Subject = bytes.Clone(v)
		case "aud":
			err = c.Audience.UnmarshalJSON(v)
		case "exp":
			c.ExpiresAt, err = numericDate(v)
		case "nbf":
			c.NotBefore, err = numericDate(v)
		case "iat":
			c.IssuedAt, err = numericDate(v)
		case "scope":
			c.Scope = bytes.Clone(v)
		}
		return err
	})
	switch {
	case errors.Is(err, strictjson.ErrDuplicate):
		return &reasonError{fmt.Errorf("%w: the payload names a claim twice", ErrMalformed)}
	case errors.Is(err, strictjson.ErrInvalid):
		return &reasonError{fmt.Errorf("%w: the payload is not a JSON object in UTF-8", ErrMalformed)}
	case err != nil:
		return &reasonError{fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	return nil
}

var (
	errIssuerType = errors.New("iss must be a string")
	errDateType   = errors.New("exp, nbf and iat must be numbers of seconds")
)

// numericDate reads a date claim, which must be a JSON number.
func numericDate(v jsontext.Value) (*jwt.NumericDate, error) {
	if v.Kind() != '0' {
		return nil, errDateType
	}
	var d jwt.NumericDate
	if err := d.UnmarshalJSON(v); err != nil {
		return nil, errDateType
	}
	return &d, nil
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
