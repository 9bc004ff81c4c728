package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/noticed/noticed/internal/auth"
)

// token prints a token signed with the configured secret, for development
// and scripts.
func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("noticed token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "the user id (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid; 0 never expires")
	scope := fs.String("scope", "", `space- or comma-separated scopes, e.g. "publish"`)
	var c Config
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HMAC secret (env NOTICED_JWT_SECRET)")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "iss claim (env NOTICED_JWT_ISSUER)")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "aud claim (env NOTICED_JWT_AUDIENCE)")
	if err := parseWithEnv(fs, args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *sub == "" {
		return fmt.Errorf("%w: -sub is required", errUsage)
	}
	if c.JWTSecret == "" {
		return fmt.Errorf("%w: no secret: set -jwt-secret or NOTICED_JWT_SECRET (a server in dev mode prints ready tokens at start-up instead)", errUsage)
	}
	scopes := strings.FieldsFunc(*scope, func(r rune) bool { return r == ' ' || r == ',' })
	tok, err := auth.Sign([]byte(c.JWTSecret), *sub, *ttl, scopes, c.JWTIssuer, c.JWTAudience)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
