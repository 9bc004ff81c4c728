package redistest

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// do sends one inline command and returns the first line of the reply.
func do(t *testing.T, addr, cmd string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := fmt.Fprintf(c, "%s\r\n", cmd); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(line, "$") && line != "$-1\r\n" {
		line, err = r.ReadString('\n')
	}
	return strings.TrimSpace(line), err
}

func TestStartKillRestartKeepsAOF(t *testing.T) {
	t.Parallel()
	s := Start(t, "--appendonly", "yes")
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/0") {
		t.Fatalf("URL %q", s.URL())
	}
	if got, err := do(t, s.Addr(), "SET k v"); err != nil || got != "+OK" {
		t.Fatalf("SET: %q, %v", got, err)
	}
	s.Kill()
	if _, err := do(t, s.Addr(), "PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart()
	if got, err := do(t, s.Addr(), "GET k"); err != nil || got != "v" {
		t.Fatalf("GET after restart: %q, %v; want v", got, err)
	}
}

func TestStopThenRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Stop()
	if _, err := do(t, s.Addr(), "PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Restart()
	if got, err := do(t, s.Addr(), "PING"); err != nil || got != "+PONG" {
		t.Fatalf("PING after restart: %q, %v", got, err)
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Pause()
	if _, err := do(t, s.Addr(), "PING"); err == nil {
		t.Fatal("PING answered while paused")
	}
	s.Resume()
	if got, err := do(t, s.Addr(), "PING"); err != nil || got != "+PONG" {
		t.Fatalf("PING after resume: %q, %v", got, err)
	}
}

func TestPausedServerIsStillKilledAtCleanup(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Pause()
	s.Stop() // must not hang on a stopped process
}

// fakeTB records how Start gives up.
type fakeTB struct {
	testing.TB
	how string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.how = "skip: " + fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) {
	f.how = "fatal: " + fmt.Sprint(args...)
	runtime.Goexit()
}

func TestMissingServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, tt := range []struct{ allow, want string }{
		{"", "fatal: redis-server not found: apt-get install redis-server"},
		{"1", "skip: redis-server not found: apt-get install redis-server"},
	} {
		t.Setenv("NOTICED_ALLOW_SKIP", tt.allow)
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Start(f)
		}()
		<-done
		if f.how != tt.want {
			t.Errorf("NOTICED_ALLOW_SKIP=%q: got %q, want %q", tt.allow, f.how, tt.want)
		}
	}
}
