package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nginxProc is nginx running deploy/nginx.conf (or another file of
// deploy/), with its port, upstreams and paths moved to free ports and a
// temporary directory.
type nginxProc struct {
	url    string
	dir    string
	cmd    *exec.Cmd
	out    *logBuffer
	client *http.Client // one that trusts its certificate, when it serves TLS
}

// startNginx runs deploy/nginx.conf in front of upstreams (the two
// addresses that replace 127.0.0.1:8081 and :8082) and returns once it
// answers /healthz, which needs an upstream up.
func startNginx(t *testing.T, upstreams [2]string) *nginxProc {
	t.Helper()
	return startNginxConf(t, "nginx.conf", "listen 8000;", "http://", http.DefaultClient, upstreams, nil)
}

// startNginxConf runs deploy/<file>, whose listen directive is listen
// (8000 or 8443 to be replaced with a free port), reached with client at
// scheme; rewrite moves whatever else the file names into the test's
// directory (dir is that directory).
func startNginxConf(t *testing.T, file, listen, scheme string, client *http.Client, upstreams [2]string, rewrite func(conf, dir string) string) *nginxProc {
	t.Helper()
	bin := need(t, "nginx", "nginx", "/usr/sbin/nginx")
	conf, err := os.ReadFile(filepath.Join("..", "deploy", file))
	if err != nil {
		t.Fatal(err)
	}
	// A directory of its own under /tmp, readable by the workers (they
	// run as nobody when the master is root).
	dir, err := os.MkdirTemp("", "noticed-e2e-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	text := string(conf)
	if rewrite != nil {
		text = rewrite(text, dir)
	}
	text = rewriteConf(t, file, text, listen, addr, upstreams, dir)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	n := &nginxProc{url: scheme + addr, dir: dir, out: &logBuffer{}, client: client}
	n.cmd = exec.Command(bin, "-p", dir+"/", "-c", confPath, "-g", "daemon off;")
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		n.cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// SIGTERM, not SIGKILL: the master must take its workers with it.
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("nginx still running 10s after SIGTERM")
			n.cmd.Process.Kill()
			<-exited
		}
		// nginx.conf logs to noticed-*.log, nginx-tls.conf to noticed-tls-*.log.
		logs := "noticed" + strings.TrimPrefix(strings.TrimSuffix(file, ".conf"), "nginx")
		access, _ := os.ReadFile(filepath.Join(dir, logs+"-access.log"))
		errLog, _ := os.ReadFile(filepath.Join(dir, logs+"-error.log"))
		for name, text := range map[string][]byte{"access log": access, "error log": errLog, "output": []byte(n.out.String())} {
			// Every JWT starts with eyJ: the base64 of `{"`.
			if bytes.Contains(text, []byte("eyJ")) || bytes.Contains(text, []byte("token=")) {
				t.Errorf("nginx's %s holds a token:\n%s", name, tailLines(string(text), 5))
			}
		}
		if t.Failed() {
			t.Logf("nginx output:\n%s\nerror log:\n%s\naccess log (last 30 lines):\n%s", n.out, errLog, tailLines(string(access), 30))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = poll(ctx, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		resp, err := client.Get(n.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	select {
	case <-exited:
		t.Fatalf("nginx exited at start:\n%s", n.out)
	default:
	}
	if err != nil {
		t.Fatalf("nginx did not answer /healthz within 15s:\n%s", n.out)
	}
	return n
}

// rewriteConf moves the shipped config onto the test's ports and
// directory. Each replacement must apply, so that a change to the file
// that the test no longer understands fails here rather than running
// something else.
func rewriteConf(t *testing.T, file, conf, listen, addr string, upstreams [2]string, dir string) string {
	t.Helper()
	for _, r := range []struct{ old, new string }{
		{listen, strings.Replace(listen, listen[len("listen "):len("listen 8000")], addr, 1)},
		{"127.0.0.1:8081", upstreams[0]},
		{"127.0.0.1:8082", upstreams[1]},
		{"/run/", dir + "/"},
		{"/var/log/nginx/", dir + "/"},
		{"/var/lib/nginx/", dir + "/"},
	} {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("deploy/%s: no %q to rewrite for the test", file, r.old)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	for _, left := range []string{":8000", ":8443", ":8081", ":8082", " /var/", " /run/", " /etc/"} {
		if strings.Contains(conf, left) {
			t.Fatalf("deploy/%s: %q left after rewriting it for the test", file, left)
		}
	}
	return conf
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
