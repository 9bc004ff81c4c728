package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/sse"
)

// These tests start noticed in this process through Main, the way serve
// does; the tests of signals and exit codes run the binary (main_test.go).

// logBuffer is a log that tests read while the server writes it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// inProcess is a noticed started by runMain.
type inProcess struct {
	m   *Main
	url string
	log *logBuffer
}

// runMain runs noticed on a free port of 127.0.0.1 with args; the test's
// end closes it.
func runMain(t *testing.T, args ...string) *inProcess {
	t.Helper()
	log := &logBuffer{}
	m := NewMain(log, io.Discard)
	if err := m.ParseFlags(append([]string{"-addr", "127.0.0.1:0"}, args...)); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &inProcess{m: m, url: "http://" + m.Addr().String(), log: log}
}

// Close drains like SIGTERM: every open stream is told to come back soon
// (a retry shorter than a stream's first, and not the same for all), then
// closed, and Close returns.
func TestMainCloseDrainsStreams(t *testing.T) {
	t.Parallel()
	const secret = "inprocess-secret-inprocess-secret"
	p := runMain(t, "-jwt-secret", secret)
	sub, _ := auth.Sign([]byte(secret), "u1", time.Hour, nil, "", "")
	pub, _ := auth.Sign([]byte(secret), "pub", time.Hour, []string{"publish"}, "", "")
	var readers []*sse.Reader
	for range 5 {
		_, r := openStream(t, p.url, sub)
		readers = append(readers, r)
	}
	if code := publishStatus(t, p.url, pub, "u1", "before the drain"); code != 200 {
		t.Fatalf("publish: %d", code)
	}
	for i, r := range readers {
		if ev, err := r.Next(); err != nil || ev.Data != "before the drain" {
			t.Fatalf("stream %d: got %+v, %v; want the published event", i, ev, err)
		}
	}

	closed := make(chan error, 1)
	go func() { closed <- p.m.Close() }()
	retries := map[int64]bool{}
	for i, r := range readers {
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
		// The first retry is the stream's 2–3 s; the drain sends a shorter one.
		if got := r.Retry(); got < 100 || got >= 2000 {
			t.Errorf("stream %d: last retry %d ms; want the drain's, 100 to 1999", i, got)
		} else {
			retries[got] = true
		}
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Close still draining after 15s (-drain-timeout is 10s)")
	}
	if len(retries) < 2 {
		t.Errorf("5 drained streams were all told the same retry: %v", retries)
	}
	if log := p.log.String(); !strings.Contains(log, `"msg":"shutting down: draining streams"`) || !strings.Contains(log, `"msg":"stopped"`) {
		t.Errorf("log without the drain and the stop:\n%s", log)
	}
}

// Run listens before it returns: a busy address is its error, and Close
// then releases what Run had opened.
func TestMainRunOnBusyAddressFails(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"-addr", busy.Addr().String(), "-jwt-secret", strings.Repeat("b", 32)}); err != nil {
		t.Fatal(err)
	}
	err = m.Run(t.Context())
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Run on a busy address: %v; want EADDRINUSE", err)
	}
	if m.Addr() != nil {
		t.Errorf("Addr after a failed Run: %v; want nil", m.Addr())
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close after a failed Run: %v", err)
	}
}

// Bad flags are usage errors from ParseFlags, before anything is opened.
func TestMainParseFlagsRefusesBadSettings(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-nope"},
		{"-stream-maxlen", "0"},
		{"-log-level", "loud"},
		{"extra"},
	} {
		m := NewMain(io.Discard, io.Discard)
		if err := m.ParseFlags(args); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v; want a usage error", args, err)
		}
	}
}
