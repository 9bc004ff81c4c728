// Package deploy holds no code: its tests check the operator's kit in this
// directory (the systemd unit, the container image, the Prometheus rules
// and the Grafana dashboard) with the real tools, against a real noticed.
package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/testtools"
)

// binary is noticed, built static (CGO_ENABLED=0) as the image needs it.
var binary string

func TestMain(m *testing.M) { os.Exit(testtools.RunWithNoticed(m, testtools.Static, &binary)) }

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
