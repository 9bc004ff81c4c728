// Package testtools finds the programs that tests run for real (nginx,
// chromium, promtool, podman ...), so that each test says the same thing
// when one is missing.
package testtools

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Need returns the path of the program name, looked up in PATH, then in
// alsoIn (full paths) and in /usr/sbin and /sbin, which a non-root PATH
// often lacks. Missing, the test fails saying which Debian package holds
// it, or is skipped saying so when NOTICED_ALLOW_SKIP=1: a missing tool
// never lets a test pass quietly.
func Need(t testing.TB, name, pkg string, alsoIn ...string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, p := range append(alsoIn, filepath.Join("/usr/sbin", name), filepath.Join("/sbin", name)) {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found: apt-get install %s (scripts/test.sh installs it when run as root)", name, pkg)
	if os.Getenv("NOTICED_ALLOW_SKIP") == "1" {
		t.Skip(msg + "; skipped, so what needs it is NOT checked")
	}
	t.Fatal(msg)
	return ""
}
