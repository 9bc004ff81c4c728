package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/sse"
	"github.com/noticed/noticed/internal/testtools"
)

var binary string

func TestMain(m *testing.M) { os.Exit(testtools.RunWithNoticed(m, testtools.Race, &binary)) }

// proc is a running noticed.
type proc struct {
	cmd    *exec.Cmd
	url    string
	stdout *lines // the log
	stderr *lines
	exited chan error
}

// lines collects a pipe's output line by line for tests to wait on. It
// never blocks the process: every line is kept.
type lines struct {
	mu   sync.Mutex
	all  []string
	next int           // the first line waitLine has not looked at
	more chan struct{} // closed when a line arrives or the pipe ends
	done bool
}

func collect(r io.Reader) *lines {
	l := &lines{more: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.all = append(l.all, sc.Text())
			close(l.more)
			l.more = make(chan struct{})
			l.mu.Unlock()
		}
		l.mu.Lock()
		l.done = true
		close(l.more)
		l.mu.Unlock()
	}()
	return l
}

// waitLine returns the first line matching re after the last line an
// earlier waitLine returned.
func (l *lines) waitLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		for ; l.next < len(l.all); l.next++ {
			if m := re.FindStringSubmatch(l.all[l.next]); m != nil {
				l.next++
				l.mu.Unlock()
				return m
			}
		}
		done, more, all := l.done, l.more, strings.Join(l.all, "\n")
		l.mu.Unlock()
		if done {
			t.Fatalf("output ended before %v; got:\n%s", re, all)
		}
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("no line matching %v; got:\n%s", re, all)
		}
	}
}

// saw reports whether any line so far matches re.
func (l *lines) saw(re *regexp.Regexp) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.all {
		if re.MatchString(line) {
			return true
		}
	}
	return false
}

var listening = regexp.MustCompile(`"msg":"noticed listening","addr":"([^"]+)"`)

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	// A dev server keeps its secret in a file of the test's own.
	cmd.Env = append(append(os.Environ(), "NOTICED_DEV_SECRET_FILE="+filepath.Join(t.TempDir(), "dev-secret")), env...)
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stdout: collect(stdout), stderr: collect(stderr), exited: make(chan error, 1)}
	waiting := false
	t.Cleanup(func() {
		cmd.Process.Kill()
		if waiting {
			<-p.exited
		} else {
			cmd.Wait()
		}
	})
	m := p.stdout.waitLine(t, listening)
	p.url = "http://" + m[1]
	// Only now: Wait closes the pipes, and a failed start's output must be
	// read first.
	waiting = true
	go func() { p.exited <- cmd.Wait() }()
	return p
}

func openStream(t *testing.T, base, tok string) (*http.Response, *sse.Reader) {
	t.Helper()
	resp, err := http.Get(base + "/notice?token=" + url.QueryEscape(tok))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /notice: %d", resp.StatusCode)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, sse.NewReader(resp.Body)
}

func TestDevModeTokensWork(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "-addr", "127.0.0.1:0")
	sub := p.stderr.waitLine(t, regexp.MustCompile(`curl -N '(.*)/notice\?token=(.*)'`))
	pub := p.stderr.waitLine(t, regexp.MustCompile(`curl -H 'Authorization: Bearer (.*)' -d user=alice`))
	_, events := openStream(t, sub[1], sub[2])

	form := url.Values{"user": {"alice"}, "event": {"greeting"}, "data": {"hello alice"}}
	req, _ := http.NewRequest(http.MethodPost, p.url+"/notice", strings.NewReader(form.Encode()))
	req.Header.Set("Authorization", "Bearer "+pub[1])
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("publish: %v %v", err, resp)
	}
	var out struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	ev, err := events.Next()
	if err != nil || ev.ID != out.ID || ev.Type != "greeting" || ev.Data != "hello alice" {
		t.Fatalf("got %+v, %v; want the published event %s", ev, err, out.ID)
	}
}

// In dev mode `noticed token` mints a token for any user with the dev
// server's secret, so the README's examples for users 42, 1 and 2 can be
// watched arriving; the secret's file goes when the server stops.
func TestDevModeMintsTokensForAnyUser(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "dev-secret")
	env := []string{"NOTICED_DEV_SECRET_FILE=" + file}
	p := start(t, env, "-addr", "127.0.0.1:0")
	pub := p.stderr.waitLine(t, regexp.MustCompile(`curl -H 'Authorization: Bearer (.*)' -d user=alice`))
	p.stderr.waitLine(t, regexp.MustCompile(`go run ./cmd/noticed token -sub 42`))
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev secret file: %v %v; want mode 0600", fi, err)
	}
	cmd := exec.Command(binary, "token", "-sub", "42")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("noticed token in dev mode: %v", err)
	}
	_, events := openStream(t, p.url, strings.TrimSpace(string(out)))
	req, _ := http.NewRequest(http.MethodPost, p.url+"/notice", strings.NewReader("user=42&data=hi+42"))
	req.Header.Set("Authorization", "Bearer "+pub[1])
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("publish: %v %v", err, resp)
	}
	resp.Body.Close()
	if ev, err := events.Next(); err != nil || ev.Data != "hi 42" {
		t.Fatalf("user 42 got %+v, %v", ev, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = <-p.exited
	p.exited <- err // start's cleanup waits for it too
	if err != nil {
		t.Fatalf("exit: %v", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("dev secret file after the server stopped: %v; want it gone", err)
	}
}

func TestSIGTERMDrainsStreamsAndExitsZero(t *testing.T) {
	t.Parallel()
	const secret = "drain-test-secret-drain-test-secret"
	p := start(t, []string{"NOTICED_JWT_SECRET=" + secret, "NOTICED_ADDR=127.0.0.1:0"})
	tok, _ := auth.Sign([]byte(secret), "u1", time.Hour, nil, "", "")
	var readers []*sse.Reader
	for range 5 {
		_, r := openStream(t, p.url, tok)
		readers = append(readers, r)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	retries := map[int64]bool{}
	for _, r := range readers {
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
		last := r.Retry()
		// The first retry is the stream's 2–3 s; the drain sends a shorter one.
		if last < 100 || last >= 2000 {
			t.Errorf("drained stream's last retry: %d ms", last)
		}
		retries[last] = true
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
		p.exited <- nil
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15s after SIGTERM")
	}
	if len(retries) < 2 {
		t.Errorf("5 drained streams were all told the same retry: %v", retries)
	}
}

func TestTokenCommand(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "token", "-sub", "42", "-scope", "publish", "-ttl", "5m")
	cmd.Env = append(os.Environ(), "NOTICED_JWT_SECRET=token-cmd-secret-token-cmd-secret")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	v, _ := auth.NewVerifier(auth.Config{Secret: []byte("token-cmd-secret-token-cmd-secret")})
	claims, err := v.Verify(strings.TrimSpace(string(out)))
	if err != nil || claims.Subject != "42" || !claims.Can("publish") || time.Until(claims.ExpiresAt) > 5*time.Minute {
		t.Fatalf("token %q: %+v, %v", out, claims, err)
	}

	cmd = exec.Command(binary, "token", "-sub", "42")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NOTICED_DEV_SECRET_FILE=" + filepath.Join(t.TempDir(), "none")}
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "NOTICED_JWT_SECRET") {
		t.Fatalf("without a secret: %v %q; want exit 2 naming NOTICED_JWT_SECRET", err, out)
	}
}

func TestBadFlagsFailAtOnce(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-nope"},
		{"-stream-maxlen", "0"},
		{"-jwt-secret", "a", "-jwt-key-file", "b"},
		{"-addr", "127.0.0.1:99999"},
		{"-redis", "nope://x"},
		{"-redis", "redis+sentinel://127.0.0.1:1"},
		{"-redis", "redis+cluster://127.0.0.1:1/2"},
		{"-publish-replicas", "-1"},
		{"-publish-replicas", "1"}, // no -redis
		{"-max-user-len", "201"},
		{"-max-event-len", "0"},
		{"-max-event-len", "65"},
		{"-max-header-bytes", "100"},
		{"-read-header-timeout", "0s"},
		{"-idle-timeout", "-1s"},
		{"-trusted-proxies", "10.0.0.0/8,proxy.example"},
		{"-jwt-key-file", "/nonexistent/jwks.json"},
		{"-jwt-key-file", "main_test.go"}, // not a key file
	} {
		cmd := exec.Command(binary, args...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%v: exited 0", args)
		}
		if len(out) == 0 {
			t.Errorf("%v: said nothing", args)
		}
	}
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "NOTICED_HEARTBEAT=soon")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "NOTICED_HEARTBEAT") {
		t.Errorf("bad env value: %v %q; want a failure naming NOTICED_HEARTBEAT", err, out)
	}
}
