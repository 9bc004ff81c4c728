package testtools

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building noticed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
