// Package deploy holds no code: its tests check the operator's kit in this
// directory (the systemd unit, the container image, the Prometheus rules
// and the Grafana dashboard) with the real tools, against a real noticed.
package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// binary is noticed, built static (CGO_ENABLED=0) as the image needs it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "noticed-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "noticed")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s", "-o", binary, "github.com/noticed/noticed/cmd/noticed")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building noticed: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need finds a tool the test cannot do without. Missing, the test fails
// saying which package holds it (scripts/test.sh installs them), or, with
// NOTICED_ALLOW_SKIP=1, is skipped saying so.
func need(t *testing.T, name, pkg string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found: apt-get install %s (scripts/test.sh does it as root); the operator's kit is NOT checked", name, pkg)
	if os.Getenv("NOTICED_ALLOW_SKIP") == "1" {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// run runs a tool with a bound on its time and returns its output,
// failing the test when it fails.
func run(t *testing.T, limit time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := runErr(limit, name, args...)
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", filepath.Base(name), args, err, out)
	}
	return out
}

func runErr(limit time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}
