package deploy

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// containerLimit bounds each container command: the image is FROM scratch
// and builds offline in seconds, so a minute means something is stuck.
const containerLimit = time.Minute

// TestContainerImage builds the image from deploy/Dockerfile with podman
// (or docker where podman is absent), runs it, waits for /healthz through
// the published port, runs the image's own HEALTHCHECK, and stops it with
// SIGTERM, which must drain and exit 0.
func TestContainerImage(t *testing.T) {
	t.Parallel()
	engine, docker := containerEngine(t)
	ctxDir := t.TempDir()
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, binary, filepath.Join(ctxDir, "noticed"))

	suffix := randomHex(t)
	image, name := "localhost/noticed-test:"+suffix, "noticed-test-"+suffix
	build := []string{"build", "-t", image, ctxDir}
	if !docker {
		build = append([]string{"build", "--format", "docker"}, build[1:]...)
	}
	run(t, 3*containerLimit, engine, build...)
	t.Cleanup(func() { runErr(containerLimit, engine, "rmi", "-f", image) })

	port := freePort(t)
	args := []string{"run", "-d", "--name", name,
		"-p", "127.0.0.1:" + strconv.Itoa(port) + ":8080",
		"-e", "NOTICED_JWT_SECRET=container-test-secret-container-test",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000",
		image}
	if !docker {
		// This machine's crun refuses its hybrid cgroups; runc runs.
		args = append([]string{"--runtime", "runc"}, args...)
	}
	run(t, containerLimit, engine, args...)
	t.Cleanup(func() { runErr(containerLimit, engine, "rm", "-f", name) })
	logs := func() string { out, _ := runErr(containerLimit, engine, "logs", name); return out }

	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within 30s (last: %v); logs:\n%s", url, err, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}

	if user := strings.TrimSpace(run(t, containerLimit, engine, "inspect", "--format", "{{.Config.User}}", name)); user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("the container runs as %q, want a user other than root", user)
	}
	if docker {
		waitHealthy(t, engine, name)
	} else {
		// podman runs the image's HEALTHCHECK command itself (its timer
		// needs a running systemd, which this machine may not have).
		run(t, containerLimit, engine, "--runtime", "runc", "healthcheck", "run", name)
	}

	run(t, containerLimit, engine, "stop", "-t", "15", name)
	if code := strings.TrimSpace(run(t, containerLimit, engine, "inspect", "--format", "{{.State.ExitCode}}", name)); code != "0" {
		t.Errorf("exit code after SIGTERM: %s, want 0; logs:\n%s", code, logs())
	}
	if l := logs(); !strings.Contains(l, `"msg":"stopped"`) {
		t.Errorf("no drain on SIGTERM; logs:\n%s", l)
	}
}

// containerEngine is podman, or docker where only docker is installed.
// Neither: the test fails (or, with NOTICED_ALLOW_SKIP=1, is skipped)
// saying the image was not checked.
func containerEngine(t *testing.T) (path string, docker bool) {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		if p, err := exec.LookPath("docker"); err == nil {
			return p, true
		}
	}
	return need(t, "podman", "podman runc"), false
}

// waitHealthy waits for docker's own health check to pass.
func waitHealthy(t *testing.T, engine, name string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		status := strings.TrimSpace(run(t, containerLimit, engine, "inspect", "--format", "{{.State.Health.Status}}", name))
		if status == "healthy" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health check: %s after a minute", status)
		}
		time.Sleep(time.Second)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
