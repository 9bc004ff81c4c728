package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/noticed/noticed/internal/auth"
)

// reloadKeys re-reads -jwt-key-file on SIGHUP. Requests after it use the
// new keys; open streams were authenticated when they opened and go on
// (their token's exp still ends them). A file that cannot be read or
// parsed leaves the keys in force.
func reloadKeys(c *Config, v *auth.Verifier, log *slog.Logger) {
	if c.JWTKeyFile == "" {
		log.Info("SIGHUP: keys come from -jwt-secret, -jwks-url or dev mode, not a key file: nothing to reload")
		return
	}
	data, err := os.ReadFile(c.JWTKeyFile)
	if err == nil {
		err = v.ReloadKeys(data)
	}
	if err != nil {
		log.Error("keys not reloaded; the previous keys stay in force", "file", c.JWTKeyFile, "err", err)
		return
	}
	log.Info("keys reloaded", "file", c.JWTKeyFile, "kids", v.KeyIDs(), "algorithms", v.Algorithms())
}

func newVerifier(c *Config, stderr io.Writer, log *slog.Logger) (*auth.Verifier, *devMode, error) {
	cfg := auth.Config{Issuer: c.JWTIssuer, Audience: c.JWTAudience, Leeway: c.JWTLeeway, MaxUserLen: c.MaxUserLen}
	switch {
	case len(c.JWKSURLs) > 0:
		set, err := newJWKS(c, log)
		if err != nil {
			return nil, nil, err
		}
		cfg.JWKS = set
	case c.JWTKeyFile != "":
		data, err := os.ReadFile(c.JWTKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("-jwt-key-file: %w", err)
		}
		cfg.KeyFile = data
	case c.JWTSecret != "":
		cfg.Secret = []byte(c.JWTSecret)
	default:
		secret, err := auth.RandomSecret()
		if err != nil {
			return nil, nil, err
		}
		cfg.Secret = secret
		sub, err := auth.Sign(secret, "alice", 24*time.Hour, nil, c.JWTIssuer, c.JWTAudience)
		if err != nil {
			return nil, nil, err
		}
		pub, err := auth.Sign(secret, "dev-publisher", 24*time.Hour, []string{"publish"}, c.JWTIssuer, c.JWTAudience)
		if err != nil {
			return nil, nil, err
		}
		log.Warn("DEV MODE: no -jwt-secret or -jwt-key-file given; tokens are signed with a random secret that dies with this process. Do not run this in production.")
		dev := &devMode{subscriber: sub, publisher: pub}
		if dev.secretFile, dev.removeSecret, err = writeDevSecret(secret); err != nil {
			// Only `noticed token` needs it; the printed tokens still work.
			log.Warn("dev secret not written: `noticed token` cannot mint tokens for this server", "err", err)
		}
		v, err := auth.NewVerifier(cfg)
		return v, dev, err
	}
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		if cfg.JWKS != nil {
			cfg.JWKS.Close()
		}
		if c.JWTKeyFile != "" {
			return nil, nil, fmt.Errorf("-jwt-key-file %s: %w", c.JWTKeyFile, err)
		}
		return nil, nil, fmt.Errorf("-jwt-secret: %w", err)
	}
	return v, nil, nil
}
