package testtools

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build says how RunWithNoticed builds cmd/noticed.
type Build int

const (
	// Race builds with the race detector, so that a data race under real
	// load fails the test that caused it.
	Race Build = iota
	// Static builds without cgo, as the container image takes it.
	Static
)

// RunWithNoticed is a TestMain's body for tests that run noticed as a
// process: it builds cmd/noticed into a temporary directory, sets *binary
// to its path, runs the tests, removes the directory and returns the exit
// code for os.Exit.
func RunWithNoticed(m *testing.M, how Build, binary *string) int {
	// The build runs in the product's own module, so the binary under test
	// links the versions the product's go.mod selects, also when the caller
	// is a nested module (e2e/) that lists other dependencies and whose
	// go.sum does not cover the product's.
	src, err := productDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "noticed-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*binary = filepath.Join(dir, "noticed")
	args := []string{"build", "-o", *binary}
	env := os.Environ()
	switch how {
	case Race:
		args = append(args, "-race")
	case Static:
		args = append(args, "-trimpath", "-ldflags=-s")
		env = append(env, "CGO_ENABLED=0")
	}
	build := exec.Command("go", append(args, "github.com/noticed/noticed/cmd/noticed")...)
	build.Env = env
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building noticed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// productDir is the directory of the module github.com/noticed/noticed: the
// main module's for the product's own tests, the replacement's for a nested
// module that replaces it with ../.
func productDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/noticed/noticed").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("finding module github.com/noticed/noticed: %w\n%s", err, ee.Stderr)
		}
		return "", fmt.Errorf("finding module github.com/noticed/noticed: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("finding module github.com/noticed/noticed: go list -m gave no directory")
	}
	return dir, nil
}
