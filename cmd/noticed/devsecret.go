package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/noticed/noticed/internal/auth"
)

// In dev mode the random secret is written to a file only its owner can
// read, so that `noticed token` can mint a token for any user of the dev
// server started last (the publish examples use users 42, 1 and 2, not
// only the printed "alice"). The file goes when the server stops; it
// holds nothing a production set-up uses.

// devSecretEnv names the file; empty: the user's cache directory.
const devSecretEnv = "NOTICED_DEV_SECRET_FILE"

// devSecretPath is where the dev secret is kept.
func devSecretPath() (string, error) {
	if p := os.Getenv(devSecretEnv); p != "" {
		return p, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the dev secret (set %s): %w", devSecretEnv, err)
	}
	return filepath.Join(dir, "noticed", "dev-secret"), nil
}

// writeDevSecret keeps secret for `noticed token`; remove undoes it if the
// file still holds this secret (a later dev server may have replaced it).
func writeDevSecret(secret []byte) (path string, remove func(), err error) {
	path, err = devSecretPath()
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", nil, err
	}
	text := hex.EncodeToString(secret) + "\n"
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return "", nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", nil, err
	}
	return path, func() {
		if b, err := os.ReadFile(path); err == nil && string(b) == text {
			os.Remove(path)
		}
	}, nil
}

// readDevSecret returns the secret of the running dev server, or
// fs.ErrNotExist when there is none.
func readDevSecret() ([]byte, string, error) {
	path, err := devSecretPath()
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", errNoDevSecret, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, path, err
	}
	secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(secret) < auth.MinSecretLen {
		return nil, path, errors.New("not a dev secret written by noticed")
	}
	return secret, path, nil
}

var errNoDevSecret = fs.ErrNotExist
