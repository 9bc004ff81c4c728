package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/noticed/noticed/internal/testtools"
)

// binary is noticed, built once for every test with the race detector on,
// so that a data race under real load fails the test that caused it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "noticed-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "noticed")
	build := exec.Command("go", "build", "-race", "-o", binary, "github.com/noticed/noticed/cmd/noticed")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building noticed: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need finds a program the tests cannot do without (testtools.Need).
func need(t testing.TB, name, pkg string, alsoIn ...string) string {
	t.Helper()
	return testtools.Need(t, name, pkg, alsoIn...)
}
