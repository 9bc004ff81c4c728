package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A weak HMAC secret used to start silently. Now noticed (and `noticed
// token`) refuse at once, naming the flag, a -jwt-secret or an oct key
// shorter than 32 bytes; dev mode's random secret is long enough.
func TestShortSecretRefusedAtStart(t *testing.T) {
	t.Parallel()
	short := strings.Repeat("s", 31)
	octFile := filepath.Join(t.TempDir(), "jwks.json")
	// {"kty":"oct","k":base64url("short-secret")}
	if err := os.WriteFile(octFile, []byte(`{"keys":[{"kty":"oct","kid":"a","k":"c2hvcnQtc2VjcmV0"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      string
		wantCode int
		wantSay  []string
	}{
		{"1-byte flag", []string{"-addr", "127.0.0.1:0", "-jwt-secret", "a"}, "", 2, []string{"-jwt-secret", "1 bytes", "at least 32"}},
		{"31-byte flag", []string{"-addr", "127.0.0.1:0", "-jwt-secret", short}, "", 2, []string{"-jwt-secret", "31 bytes"}},
		{"31-byte env", []string{"-addr", "127.0.0.1:0"}, "NOTICED_JWT_SECRET=" + short, 2, []string{"NOTICED_JWT_SECRET", "31 bytes"}},
		{"short oct key", []string{"-addr", "127.0.0.1:0", "-jwt-key-file", octFile}, "", 1, []string{"-jwt-key-file", `kid "a"`, "too short", "12 bytes"}},
		{"token, 1-byte flag", []string{"token", "-sub", "42", "-jwt-secret", "a"}, "", 2, []string{"-jwt-secret", "1 bytes"}},
		{"token, short oct key", []string{"token", "-sub", "42", "-jwt-key-file", octFile}, "", 1, []string{"-jwt-key-file", "too short"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Bounded: a server that took the secret would run until killed.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, tt.args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			if tt.env != "" {
				cmd.Env = append(cmd.Env, tt.env)
			}
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != tt.wantCode {
				t.Fatalf("exit %v, want code %d; said %q", err, tt.wantCode, out)
			}
			for _, want := range tt.wantSay {
				if !strings.Contains(string(out), want) {
					t.Errorf("said %q, want it to name %q", out, want)
				}
			}
		})
	}
}
