package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/noticed/noticed/internal/auth"
)

// token prints a token signed with the configured secret, for development
// and scripts: -jwt-secret, or the first HMAC ("oct") key of a JWK Set
// -jwt-key-file, whose kid it then carries.
func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("noticed token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "the user id (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid; 0 never expires")
	scope := fs.String("scope", "", `space- or comma-separated scopes, e.g. "publish"`)
	var c Config
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HMAC secret (env NOTICED_JWT_SECRET)")
	fs.StringVar(&c.JWTKeyFile, "jwt-key-file", "", "JWK Set whose first oct key signs, with its kid (env NOTICED_JWT_KEY_FILE)")
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
	secret, kid := []byte(c.JWTSecret), ""
	switch {
	case c.JWTSecret != "" && c.JWTKeyFile != "":
		return fmt.Errorf("%w: -jwt-secret and -jwt-key-file are exclusive: give one", errUsage)
	case c.JWTKeyFile != "":
		data, err := os.ReadFile(c.JWTKeyFile)
		if err != nil {
			return fmt.Errorf("-jwt-key-file: %w", err)
		}
		if secret, kid, err = auth.SigningSecret(data); err != nil {
			return fmt.Errorf("-jwt-key-file %s: %w", c.JWTKeyFile, err)
		}
	case c.JWTSecret == "":
		// No secret given: the dev server's, if one runs.
		var err error
		var path string
		secret, path, err = readDevSecret()
		if errors.Is(err, errNoDevSecret) {
			return fmt.Errorf("%w: no secret: set -jwt-secret or NOTICED_JWT_SECRET, or -jwt-key-file with an oct key; or start noticed in dev mode first, whose secret this then uses", errUsage)
		}
		if err != nil {
			return fmt.Errorf("dev secret %s: %w", path, err)
		}
		fmt.Fprintf(stderr, "noticed token: signed with the dev server's secret (%s); it works with that server only, until it stops\n", path)
	default:
		if err := checkSecret(c.JWTSecret); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	scopes := strings.FieldsFunc(*scope, func(r rune) bool { return r == ' ' || r == ',' })
	tok, err := auth.SignWithKID(secret, kid, *sub, *ttl, scopes, c.JWTIssuer, c.JWTAudience)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
