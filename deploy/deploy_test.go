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

	"github.com/noticed/noticed/internal/testtools"
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

// need finds a tool the test cannot do without: missing, the test fails
// (testtools.Need).
func need(t *testing.T, name, pkg string) string {
	t.Helper()
	return testtools.Need(t, name, pkg)
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
