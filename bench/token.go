package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signToken signs the token noticed takes (HS256; sub, iat, exp, and
// scope for a publisher) with golang-jwt directly: the tool holds to the
// documented token, not to noticed's own signing code.
func signToken(secret []byte, sub string, ttl time.Duration, scopes ...string) (string, error) {
	if len(secret) == 0 || sub == "" {
		return "", errors.New("sign: a secret and a subject are needed")
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": sub, "iat": jwt.NewNumericDate(now)}
	if ttl > 0 {
		claims["exp"] = jwt.NewNumericDate(now.Add(ttl))
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return tok, nil
}
