package e2e

import (
	"os"
	"testing"

	"github.com/noticed/noticed/internal/testtools"
)

// binary is noticed, built once for every test with the race detector on,
// so that a data race under real load fails the test that caused it.
var binary string

func TestMain(m *testing.M) { os.Exit(testtools.RunWithNoticed(m, testtools.Race, &binary)) }

// need finds a program the tests cannot do without (testtools.Need).
func need(t testing.TB, name, pkg string, alsoIn ...string) string {
	t.Helper()
	return testtools.Need(t, name, pkg, alsoIn...)
}
