package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/noticed/noticed/internal/auth"
)

// urlList is -jwks-url: repeatable on the command line; its env twin
// NOTICED_JWKS_URL holds one or more URLs separated by white space (which
// a URL cannot contain).
type urlList []string

func (l *urlList) String() string { return strings.Join(*l, " ") }

func (l *urlList) Set(s string) error {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return errors.New("empty URL")
	}
	for _, f := range fields {
		u, err := url.Parse(f)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%q: want an http:// or https:// URL", f)
		}
		*l = append(*l, f)
	}
	return nil
}

// jwksFlags defines the flags of keys taken from identity providers.
func jwksFlags(fs *flag.FlagSet, c *Config) {
	fs.Var(&c.JWKSURLs, "jwks-url", "JWK Set URL of an identity provider (its jwks_uri); repeatable; a token's kid picks the key")
	fs.DurationVar(&c.JWKSRefresh, "jwks-refresh", time.Hour, "fetch each JWK Set again this often")
	fs.DurationVar(&c.JWKSUnknownKID, "jwks-unknown-kid-interval", time.Minute, "least time between fetches caused by tokens whose kid no key has")
	fs.DurationVar(&c.JWKSMaxAge, "jwks-max-age", 24*time.Hour, "keys not fetched again for this long (provider down) expire, and their tokens are refused")
}

func (c *Config) checkJWKS() []error {
	if len(c.JWKSURLs) == 0 {
		return nil
	}
	var errs []error
	if c.JWTSecret != "" || c.JWTKeyFile != "" {
		errs = append(errs, errors.New("-jwks-url excludes -jwt-secret and -jwt-key-file: give one source of keys"))
	}
	if c.JWKSRefresh < time.Second || c.JWKSUnknownKID < time.Second {
		errs = append(errs, errors.New("-jwks-refresh and -jwks-unknown-kid-interval must be at least 1s"))
	}
	if c.JWKSMaxAge <= c.JWKSRefresh {
		errs = append(errs, errors.New("-jwks-max-age must be longer than -jwks-refresh, or keys would expire between two fetches"))
	}
	return errs
}

// newJWKS fetches the providers' keys: a URL that cannot be fetched at
// start is an error, as a key file that cannot be read is.
func newJWKS(c *Config, log *slog.Logger) (*auth.JWKS, error) {
	set, err := auth.NewJWKS(auth.JWKSOptions{
		URLs: c.JWKSURLs, Refresh: c.JWKSRefresh, UnknownKID: c.JWKSUnknownKID, MaxAge: c.JWKSMaxAge, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("-jwks-url: %w", err)
	}
	log.Info("token keys loaded", "jwks_urls", []string(c.JWKSURLs), "kids", set.KeyIDs(), "refresh", c.JWKSRefresh.String())
	return set, nil
}
