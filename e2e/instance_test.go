package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// instance is one noticed process on a fixed loopback port, so that it
// can be killed and started again where nginx expects it.
type instance struct {
	t    *testing.T
	name string
	addr string
	args []string
	out  *logBuffer // every run's stdout and stderr

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	err    error         // cmd.Wait's, once exited is closed
}

var listening = regexp.MustCompile(`"msg":"noticed listening","addr":"([^"]+)"`)

// newInstance picks a free port for an instance; start runs it.
func newInstance(t *testing.T, name string, args ...string) *instance {
	in := &instance{t: t, name: name, addr: freeAddr(t), args: args, out: &logBuffer{}}
	t.Cleanup(func() {
		in.kill()
		if strings.Contains(in.out.String(), "WARNING: DATA RACE") {
			t.Errorf("noticed %s reported a data race:\n%s", name, in.out)
		}
		if t.Failed() {
			t.Logf("noticed %s output (last 40 lines):\n%s", name, in.out.tail(40))
		}
	})
	return in
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the binary and returns once it logs that it listens.
func (in *instance) start() {
	in.t.Helper()
	cmd := exec.Command(binary, append([]string{"-addr", in.addr}, in.args...)...)
	cmd.Env = hermeticEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		in.t.Fatal(err)
	}
	cmd.Stderr = in.out
	if err := cmd.Start(); err != nil {
		in.t.Fatalf("start noticed %s: %v", in.name, err)
	}
	up := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(in.out, line)
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case up <- m[1]:
				default:
				}
			}
		}
	}()
	exited := make(chan struct{})
	in.mu.Lock()
	in.cmd, in.exited = cmd, exited
	in.mu.Unlock()
	go func() {
		err := cmd.Wait()
		in.mu.Lock()
		in.err = err
		in.mu.Unlock()
		close(exited)
	}()
	select {
	case addr := <-up:
		if addr != in.addr {
			in.t.Fatalf("noticed %s listens on %s, want %s", in.name, addr, in.addr)
		}
	case <-exited:
		in.t.Fatalf("noticed %s exited at start:\n%s", in.name, in.out.tail(40))
	case <-time.After(30 * time.Second):
		in.t.Fatalf("noticed %s did not listen within 30s:\n%s", in.name, in.out.tail(40))
	}
}

// hermeticEnv is this process's environment less any NOTICED_ setting,
// so that only the flags a test gives configure the instances.
func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTICED_") {
			env = append(env, kv)
		}
	}
	return env
}

// kill sends SIGKILL and waits for the exit: streams drop mid-way, with
// no retry: sent, as when a machine dies.
func (in *instance) kill() {
	in.mu.Lock()
	cmd, exited := in.cmd, in.exited
	in.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// terminate sends SIGTERM and returns a channel that yields the exit
// error (nil for status 0) once the drain is over.
func (in *instance) terminate() <-chan error {
	in.mu.Lock()
	cmd, exited := in.cmd, in.exited
	in.mu.Unlock()
	done := make(chan error, 1)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		done <- err
		return done
	}
	go func() {
		<-exited
		in.mu.Lock()
		defer in.mu.Unlock()
		done <- in.err
	}()
	return done
}

// metric reads one unlabelled series from the instance's /metrics.
func (in *instance) metric(name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("noticed %s: no %s in /metrics", in.name, name)
}

// streamsOpen is noticed_streams_open on the instance.
func (in *instance) streamsOpen(t testing.TB) int {
	t.Helper()
	v, err := in.metric("noticed_streams_open")
	if err != nil {
		t.Fatal(err)
	}
	return int(v)
}

// waitReady polls /readyz until it answers 200: the instance has its
// backend.
func (in *instance) waitReady(ctx context.Context) error {
	return poll(ctx, func() bool {
		resp, err := http.Get("http://" + in.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// poll checks cond every 20 ms until it holds or ctx ends: for state that
// lives in another process (an HTTP answer, a metric), where there is no
// event to wait on.
func poll(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// logBuffer collects a process's output for failure messages.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) tail(n int) string { return tailLines(l.String(), n) }
