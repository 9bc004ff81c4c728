// Package redistest starts a real redis-server for tests, on a free loopback
// port, and lets a test kill, restart, stop and freeze it to show how code
// behaves when Redis goes away.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startLimit bounds how long a server may take to answer PING, loading its
// append-only file included.
const startLimit = 20 * time.Second

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	port int
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *lockedWriter // its stdout and stderr
	done chan struct{} // closed when cmd has exited
}

// Start runs redis-server on a free port of 127.0.0.1 with no persistence
// and a fresh directory, plus args (for instance "--appendonly", "yes";
// later settings win), and returns once it answers PING. The server is
// killed when the test ends.
//
// Without redis-server on PATH the test fails, unless NOTICED_ALLOW_SKIP=1,
// where it is skipped.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return startIn(t, t.TempDir(), nil, args...)
}

// startIn starts redis-server in dir with pre before the generated options
// (a configuration file must come first) and args after them.
func startIn(t testing.TB, dir string, pre []string, args ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		const msg = "redis-server not found: apt-get install redis-server"
		if os.Getenv("NOTICED_ALLOW_SKIP") == "1" {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	// A port picked here may be taken by someone else before redis-server
	// binds it; a server that exits at once is retried on another port.
	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s := &Server{t: t, bin: bin, port: port}
		s.args = append(append(append([]string{}, pre...),
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
		), args...)
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// FreePort returns a loopback port free at the moment of asking.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start launches the process and waits for its first PONG.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, s.args...)
	out := &lockedWriter{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.out, s.done = cmd, out, done

	deadline := time.Now().Add(startLimit)
	for {
		if Ping(s.Addr()) == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited at start:\n%s", s.port, out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING within %v:\n%s", s.port, startLimit, out)
		}
	}
}

// Ping sends one PING to addr and wants +PONG back (not -LOADING): the
// server is up and has loaded its data.
func Ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return errors.New(line)
	}
	return nil
}

// Port is the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the redis:// URL of database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Kill sends SIGKILL and waits for the process to exit: no shutdown save,
// connections drop at once.
func (s *Server) Kill() { s.signalAndWait(syscall.SIGKILL) }

// Running reports whether the process has been started and not exited.
func (s *Server) Running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits for a clean shutdown.
func (s *Server) Stop() { s.signalAndWait(syscall.SIGTERM) }

func (s *Server) signalAndWait(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	if sig != syscall.SIGKILL {
		// A stopped process handles SIGTERM only once it runs again.
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	<-done
}

// Restart stops the server if it still runs and starts it again on the same
// port and directory, so an append-only file written before is loaded.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// RestartWith restarts the server with args added to those it had (later
// settings win), for instance "--replicaof", host, port to bring a dead
// master back as a replica.
func (s *Server) RestartWith(args ...string) {
	s.t.Helper()
	s.Stop()
	s.mu.Lock()
	s.args = append(s.args, args...)
	s.mu.Unlock()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Pause freezes the process (SIGSTOP): connections stay open but nothing
// answers, as with a hung server or a silent network.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused process run again (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// lockedWriter lets the log be read while the process still writes it.
type lockedWriter struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
