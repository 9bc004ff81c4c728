package deploy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/sse"
)

// containerLimit bounds each container command: the image is FROM scratch
// and builds offline in seconds, so a minute means something is stuck.
const containerLimit = time.Minute

// TestContainerImage builds the image from deploy/Dockerfile with podman
// (or docker where podman is absent), runs it, waits for /healthz through
// the published port, runs the image's own HEALTHCHECK, and stops it with
// SIGTERM, which must drain and exit 0. With podman, the streams are kept
// with -data on a volume, and an event published before the stop is
// replayed after the container starts again.
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
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	args := []string{"run", "-d", "--name", name,
		"-p", "127.0.0.1:" + strconv.Itoa(port) + ":8080",
		"-e", "NOTICED_JWT_SECRET=" + containerSecret,
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"}
	volume := "noticed-test-" + suffix
	if !docker {
		// This machine's crun refuses its hybrid cgroups; runc runs. :U
		// gives the volume to the image's user (docker has no such option).
		args = append([]string{"--runtime", "runc"}, args...)
		args = append(args, "-v", volume+":/data:U", "-e", "NOTICED_DATA=/data/noticed.db")
		t.Cleanup(func() { runErr(containerLimit, engine, "volume", "rm", "-f", volume) })
	}
	run(t, containerLimit, engine, append(args, image)...)
	t.Cleanup(func() { runErr(containerLimit, engine, "rm", "-f", name) })
	logs := func() string { out, _ := runErr(containerLimit, engine, "logs", name); return out }
	waitHealthz(t, base, logs)

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

	id := publish(t, base)

	run(t, containerLimit, engine, "stop", "-t", "15", name)
	if code := strings.TrimSpace(run(t, containerLimit, engine, "inspect", "--format", "{{.State.ExitCode}}", name)); code != "0" {
		t.Errorf("exit code after SIGTERM: %s, want 0; logs:\n%s", code, logs())
	}
	if l := logs(); !strings.Contains(l, `"msg":"stopped"`) {
		t.Errorf("no drain on SIGTERM; logs:\n%s", l)
	}
	if docker {
		return
	}
	run(t, containerLimit, engine, "--runtime", "runc", "start", name)
	waitHealthz(t, base, logs)
	if got := firstEvent(t, base); got != id {
		t.Errorf("after a restart on the volume, the first event is %q, want %q published before it", got, id)
	}
}

const containerSecret = "container-test-secret-container-test"

// waitHealthz waits for base's /healthz to answer 200.
func waitHealthz(t *testing.T, base string, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz did not answer 200 within 30s (last: %v); logs:\n%s", base, err, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// publish publishes one event to user "c" and returns its id.
func publish(t *testing.T, base string) string {
	t.Helper()
	tok, err := auth.Sign([]byte(containerSecret), "producer", time.Hour, []string{"publish"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/notice", strings.NewReader(`{"user":"c","data":"kept"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("publish: %s, %v", resp.Status, err)
	}
	return out.ID
}

// firstEvent replays user "c"'s stream from the start and returns the id
// of its first event.
func firstEvent(t *testing.T, base string) string {
	t.Helper()
	tok, err := auth.Sign([]byte(containerSecret), "c", time.Hour, nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(base + "/notice?lastEventId=0&token=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := sse.NewReader(resp.Body)
	for {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		if ev.Data != "" {
			return ev.ID
		}
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
