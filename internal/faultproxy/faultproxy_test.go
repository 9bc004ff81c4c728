package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echo is a server that sends every line back, counting the connections
// it was given.
type echo struct {
	ln       net.Listener
	mu       sync.Mutex
	accepted int
	conns    []net.Conn
	changed  chan struct{}
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln, changed: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.accepted++
			e.conns = append(e.conns, c)
			close(e.changed)
			e.changed = make(chan struct{})
			e.mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			})
		}
	})
	return e
}

// waitAccepted waits until the server has been given n connections.
func (e *echo) waitAccepted(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		e.mu.Lock()
		got, changed := e.accepted, e.changed
		e.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("server accepted %d connections; want %d", got, n)
		}
	}
}

func (e *echo) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.accepted
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip sends line and wants it back.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("sent %q, got %q (%v)", line, got, err)
	}
}

// silent checks that nothing arrives on c for a short while. It can only
// pass wrongly (a byte held up longer than the wait), never fail wrongly.
func silent(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if b, err := r.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %q, %v while stalled; want nothing", b, err)
	}
}

func TestForwardsBothWays(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p := Start(t, e.ln.Addr().String())
	a, ra := dial(t, p)
	b, rb := dial(t, p)
	roundTrip(t, a, ra, "hello")
	roundTrip(t, b, rb, "world")
	roundTrip(t, a, ra, "again")
	if got := e.count(); got != 2 {
		t.Errorf("server got %d connections; want 2", got)
	}
	if got := p.Links(); got != 2 {
		t.Errorf("Links() = %d; want 2", got)
	}
}

// A stalled proxy holds bytes back without closing anything; restored, it
// passes them on in order on the same connection.
func TestStallHoldsAndRestoreDelivers(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p := Start(t, e.ln.Addr().String())
	c, r := dial(t, p)
	roundTrip(t, c, r, "before")

	p.Stall()
	for _, line := range []string{"one\n", "two\n"} {
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	silent(t, c, r)
	// A connection made meanwhile reaches nothing: the server never sees it.
	late, lateR := dial(t, p)
	if _, err := late.Write([]byte("late\n")); err != nil {
		t.Fatal(err)
	}
	silent(t, late, lateR)
	if got := e.count(); got != 1 {
		t.Fatalf("server got %d connections while stalled; want 1", got)
	}

	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, want := range []string{"one\n", "two\n"} {
		if got, err := r.ReadString('\n'); err != nil || got != want {
			t.Fatalf("after restore got %q (%v); want %q", got, err, want)
		}
	}
	_ = late.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := lateR.ReadString('\n'); err != nil || got != "late\n" {
		t.Fatalf("connection made while stalled: got %q (%v) after restore", got, err)
	}
	roundTrip(t, c, r, "after")
}

// A dropped proxy resets its connections and refuses new ones; restored,
// it takes them again on the same address.
func TestDropResetsAndRefuses(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p := Start(t, e.ln.Addr().String())
	c, r := dial(t, p)
	roundTrip(t, c, r, "before")

	p.Drop()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadByte(); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("read after drop: %v; want the connection reset", err)
	}
	if _, err := net.Dial("tcp", p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while dropped: %v; want connection refused", err)
	}
	// Each link forgets itself once both of its copies have returned.
	for deadline := time.Now().Add(10 * time.Second); p.Links() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Links() = %d while dropped; want 0", p.Links())
		}
	}

	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	c2, r2 := dial(t, p)
	roundTrip(t, c2, r2, "after")
	e.waitAccepted(t, 2)
}

// Drop while stalled resets the held connections too; Restore then mends
// both.
func TestDropWhileStalled(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p := Start(t, e.ln.Addr().String())
	c, r := dial(t, p)
	roundTrip(t, c, r, "before")
	p.Stall()
	if _, err := c.Write([]byte("held\n")); err != nil {
		t.Fatal(err)
	}
	p.Drop()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("read a byte from a dropped connection")
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	c2, r2 := dial(t, p)
	roundTrip(t, c2, r2, "after")
}

// Close ends everything, held connections included, and Restore no
// longer works.
func TestClose(t *testing.T) {
	t.Parallel()
	e := startEcho(t)
	p, err := New(e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, r := dial(t, p)
	roundTrip(t, c, r, "x")
	p.Stall()
	p.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("read a byte after Close")
	}
	if err := p.Restore(); err == nil {
		t.Fatal("Restore after Close succeeded")
	}
	p.Close() // twice is harmless
}
