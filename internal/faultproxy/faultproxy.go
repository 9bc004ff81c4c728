// Package faultproxy is a TCP proxy for tests that stands between a client
// and a server (noticed and Redis) and breaks the network between them the
// two ways networks break:
//
//   - Stall: packets stop. Connections stay open and nothing is said on
//     them; new connections are accepted but go nowhere. As with a cable
//     pulled or a firewall that drops silently, only timeouts tell.
//   - Drop: every connection is reset and new ones are refused, as when a
//     middlebox rejects or the far host has gone.
//
// Restore mends either: a stalled proxy passes on what it held back, in
// order, on the same connections; a dropped one listens again on the same
// address, so clients reconnect to what they were configured with.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards every connection made to Addr to the target.
type Proxy struct {
	addr   string
	target string

	mu      sync.Mutex
	ln      net.Listener // nil while dropped or closed
	links   map[*link]struct{}
	flowing chan struct{} // closed while bytes flow; open while stalled
	stalled bool
	closed  bool
	wg      sync.WaitGroup // the accept loop and every link's goroutines
}

// link is one client connection and, once dialled, its server side.
type link struct {
	client net.Conn
	gone   chan struct{} // closed when the link is torn down

	mu     sync.Mutex
	server net.Conn // nil until dialled
	down   bool
}

// New listens on a free port of 127.0.0.1 and forwards to target
// (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	flowing := make(chan struct{})
	close(flowing)
	p := &Proxy{
		addr:    ln.Addr().String(),
		target:  target,
		ln:      ln,
		links:   make(map[*link]struct{}),
		flowing: flowing,
	}
	p.wg.Add(1)
	go p.accept(ln)
	return p, nil
}

// Start is New for a test: it fails the test on error and closes the
// proxy when the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatalf("faultproxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Addr is the host:port clients connect to; it stays the same across Drop
// and Restore.
func (p *Proxy) Addr() string { return p.addr }

// Links returns how many client connections are open through the proxy.
func (p *Proxy) Links() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Stall stops forwarding in both directions. Bytes already read are held,
// not lost; connections stay open; new ones are accepted but not passed on
// until Restore.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stalled {
		p.stalled = true
		p.flowing = make(chan struct{})
	}
}

// Drop resets every connection (the peers see ECONNRESET, whatever they
// had in flight is gone) and stops listening, so that new connections are
// refused until Restore.
func (p *Proxy) Drop() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, l := range links {
		l.reset()
	}
}

// Restore undoes Stall and Drop: held bytes flow again, and a dropped
// proxy listens again on its address.
func (p *Proxy) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faultproxy: closed")
	}
	if p.stalled {
		p.stalled = false
		close(p.flowing)
	}
	if p.ln == nil {
		// The old sockets were reset, not closed, so none lingers in
		// TIME_WAIT on this port; another program may still have taken it
		// meanwhile, which a few tries cannot fix.
		var err error
		for range 50 {
			var ln net.Listener
			if ln, err = net.Listen("tcp", p.addr); err == nil {
				p.ln = ln
				p.wg.Add(1)
				go p.accept(ln)
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		return fmt.Errorf("faultproxy: listen again on %s: %w", p.addr, err)
	}
	return nil
}

// Close stops the proxy, resets every connection and waits for its
// goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.stalled {
		// Goroutines holding bytes back return: their links are reset.
		p.stalled = false
		close(p.flowing)
	}
	p.mu.Unlock()
	p.Drop()
	p.wg.Wait()
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed by Drop or Close
		}
		l := &link{client: c, gone: make(chan struct{})}
		p.mu.Lock()
		if p.closed || p.ln != ln {
			p.mu.Unlock()
			l.reset()
			continue
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve dials the target once bytes may flow (a stalled network does not
// let the handshake through either) and forwards both ways until either
// side closes or the link is reset.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
		l.close()
	}()
	if !p.waitFlowing(l) {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !l.setServer(server) {
		_ = server.Close()
		return
	}

	done := make(chan struct{}, 2)
	go func() { p.pipe(l, server, l.client); done <- struct{}{} }()
	go func() { p.pipe(l, l.client, server); done <- struct{}{} }()
	<-done
	// One direction ended: the other is of no use (Redis does not half
	// close); closing both ends the second copy.
	l.close()
	<-done
}

// pipe copies src to dst, holding bytes back while the proxy is stalled.
func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitFlowing(l) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitFlowing returns true once bytes may flow, false if the link is torn
// down first.
func (p *Proxy) waitFlowing(l *link) bool {
	for {
		p.mu.Lock()
		flowing, stalled := p.flowing, p.stalled
		p.mu.Unlock()
		if !stalled {
			return true
		}
		select {
		case <-flowing:
		case <-l.gone:
			return false
		}
	}
}

// setServer records the dialled server side; false when the link was torn
// down meanwhile.
func (l *link) setServer(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return false
	}
	l.server = c
	return true
}

// reset tears the link down with RST on both sides.
func (l *link) reset() { l.teardown(abort) }

// close tears the link down with an orderly close on both sides.
func (l *link) close() { l.teardown(func(c net.Conn) { _ = c.Close() }) }

func (l *link) teardown(closeConn func(net.Conn)) {
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		return
	}
	l.down = true
	close(l.gone)
	server := l.server
	l.mu.Unlock()
	closeConn(l.client)
	if server != nil {
		closeConn(server)
	}
}

// abort closes c with SO_LINGER 0: the peer gets RST instead of FIN.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
