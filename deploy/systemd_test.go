package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// maxExposure is the highest `systemd-analyze security` score the unit may
// have (0 is locked down, 10 is unprotected), in the tenths that its
// --threshold takes: 15 is 1.5. docs/operations.md records the score.
const maxExposure = "15"

// TestSystemdUnit checks noticed.service with systemd's own analyzer: it
// parses, names an executable, and keeps its hardening. No systemd runs
// here, so the unit is verified, never started.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	analyze := need(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile("noticed.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's program exists: point it at the one
	// just built.
	text := strings.Replace(string(unit), "ExecStart=/usr/local/bin/noticed ", "ExecStart="+binary+" ", 1)
	if text == string(unit) {
		t.Fatal("noticed.service: no ExecStart=/usr/local/bin/noticed to check")
	}
	path := filepath.Join(t.TempDir(), "noticed.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(t, time.Minute, analyze, "verify", "--man=no", path); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify has remarks:\n%s", out)
	}
	out := run(t, time.Minute, analyze, "security", "--offline=yes", "--threshold="+maxExposure, path)
	m := regexp.MustCompile(`Overall exposure level for noticed.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	t.Logf("systemd-analyze security: exposure %s (at most %s tenths)", m[1], maxExposure)

	for _, want := range []string{
		"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
		"RestrictAddressFamilies=", "LimitNOFILE=", "ExecReload=/bin/kill -HUP $MAINPID",
		"KillSignal=SIGTERM", "EnvironmentFile=",
	} {
		if !strings.Contains(text, "\n"+want) {
			t.Errorf("noticed.service lacks %s", want)
		}
	}
	if strings.Contains(text, "NOTICED_JWT_SECRET") {
		t.Error("noticed.service names a secret: secrets belong in the environment file")
	}
}

// TestStopOutlastsDrain: systemd's SIGKILL must come after noticed's own
// drain has had its time.
func TestStopOutlastsDrain(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile("noticed.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("noticed.service sets no TimeoutStopSec")
	}
	stop, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatalf("TimeoutStopSec=%s: %v", m[1], err)
	}
	const drainDefault = 10 * time.Second // -drain-timeout's default
	if stop <= drainDefault+5*time.Second {
		t.Errorf("TimeoutStopSec=%s leaves no room after a %s drain", stop, drainDefault)
	}
}
