package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The fleet's streams run on a few event loops, one goroutine and one
// epoll instance each, rather than a goroutine and a net.Conn per stream:
// this tool shares the machine with the server it measures, and a
// goroutine's dial, netpoll registration, stack growth and
// http.ReadResponse cost about as much CPU per open as the server's own
// work, so opens per second measured the tool. A loop does an open in a
// handful of system calls (socket, bind when spreading sources, epoll_ctl,
// connect, getsockopt, write, read) and keeps no more per stream than its
// streamClient.
//
// Everything about a stream happens on its loop's goroutine. Other
// goroutines (churn, drop, reconnect, finish) send the loop commands,
// woken through an eventfd, and never touch a stream's socket.

// A stream's phases within one connection; phIdle between connections.
const (
	phIdle    = iota
	phConnect // connect under way
	phSend    // the request partly written
	phHead    // the request sent: reading the head and the first line
	phOpen    // the head and the first line are in
)

// Commands from other goroutines to a loop.
const (
	cmdBounce = iota // close the stream's connection; it comes back at once (churn)
	cmdDrop          // close every connection; the streams wait for cmdResume
	cmdResume        // reconnect every dropped stream
	cmdStop          // close everything and end the loop
)

type command struct {
	op uint8
	s  *streamClient
}

const (
	// readBuf is each loop's read buffer, shared by its streams: what a
	// stream keeps between reads is only its unfinished line.
	readBuf = 64 << 10
	// sweepEvery is how often a loop looks for streams past their deadline
	// (openWait, idleLimit): those end up to this much late.
	sweepEvery = time.Second
	// wakeIdx tags the eventfd's epoll events; streams' are their index.
	wakeIdx = -1
)

var (
	errTimeout = errors.New("timeout")
	errDropped = errors.New("dropped")
)

// loop runs its share of a fleet's streams.
type loop struct {
	f       *fleet
	dst     unix.Sockaddr
	streams []*streamClient
	epfd    int
	wakefd  int // eventfd: commands are waiting
	epoch   time.Time
	now     int64 // nanoseconds since epoch, read once per wake-up
	buf     []byte
	req     []byte // the request being written

	// free counts the loop's in-flight slots not in use: its share of
	// -in-flight, so that loops need not share a semaphore.
	free   int
	queue  []*streamClient // waiting for a slot, from qhead on
	qhead  int
	parked []*streamClient // dropped: waiting for cmdResume
	timers []wake          // a min-heap of backoffs by time
	sweep  int64           // when the next sweep is due
	stop   bool

	mu     sync.Mutex // guards what other goroutines use: cmds, woken, closed
	cmds   []command
	woken  bool
	closed bool
}

// wake is a stream's reconnect after a backoff.
type wake struct {
	at int64
	s  *streamClient
}

// startLoops divides the streams among GOMAXPROCS loops (no more than the
// in-flight bound, so that each loop has a slot) and starts them.
func (f *fleet) startLoops() error {
	addr, err := net.ResolveTCPAddr("tcp4", f.spec.Host)
	if err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	n := min(runtime.GOMAXPROCS(0), len(f.streams))
	if f.spec.InFlight > 0 {
		n = min(n, f.spec.InFlight)
	}
	for i := range n {
		// Each loop its own: Connect writes into the Sockaddr.
		dst := &unix.SockaddrInet4{Port: addr.Port, Addr: [4]byte(addr.IP.To4())}
		l := &loop{f: f, dst: dst, epfd: -1, wakefd: -1, epoch: time.Now(), free: math.MaxInt, buf: make([]byte, readBuf)}
		if f.spec.InFlight > 0 {
			l.free = f.spec.InFlight / n
			if i < f.spec.InFlight%n {
				l.free++
			}
		}
		if err := l.init(); err != nil {
			l.close()
			for _, o := range f.loops {
				o.close()
			}
			f.loops = nil
			return err
		}
		f.loops = append(f.loops, l)
	}
	for i, s := range f.streams {
		l := f.loops[i%n]
		s.loop, s.idx, s.fd = l, int32(len(l.streams)), -1
		l.streams = append(l.streams, s)
	}
	for _, l := range f.loops {
		f.wg.Add(1)
		go l.run()
	}
	return nil
}

// init makes the loop's epoll instance and eventfd.
func (l *loop) init() error {
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("epoll_create: %w", err)
	}
	if l.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeIdx}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.wakefd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// tellLoops sends every loop a command.
func (f *fleet) tellLoops(op uint8) {
	for _, l := range f.loops {
		l.send(command{op: op})
	}
}

// bounce closes the stream's connection, if it has one, to have it come
// back at once (churn). Any goroutine may call it.
func (s *streamClient) bounce() {
	if s.loop != nil {
		s.loop.send(command{op: cmdBounce, s: s})
	}
}

// send queues a command and wakes the loop, unless it is already woken.
func (l *loop) send(c command) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.cmds = append(l.cmds, c)
	if !l.woken {
		l.woken = true
		one := [8]byte{1}
		_, _ = unix.Write(l.wakefd, one[:]) // fails only when the counter is full: then woken anyway
	}
}

// run is the loop's goroutine: it starts its streams, then waits for
// socket events, commands, backoffs and deadlines until cmdStop.
func (l *loop) run() {
	defer l.f.wg.Done()
	defer l.close()
	l.now = l.clock()
	l.sweep = l.now + int64(sweepEvery)
	for _, s := range l.streams {
		l.start(s)
	}
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(l.epfd, events, l.waitMillis())
		if err != nil && err != unix.EINTR {
			panic(fmt.Sprintf("epoll_wait: %v", err))
		}
		l.now = l.clock()
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == wakeIdx {
				l.commands()
				if l.stop {
					return
				}
				continue
			}
			s := l.streams[ev.Fd]
			if uint32(ev.Pad) == s.gen && s.fd >= 0 {
				l.event(s, ev.Events)
			}
		}
		for len(l.timers) > 0 && l.timers[0].at <= l.now {
			l.start(l.popTimer())
		}
		if l.now >= l.sweep {
			l.sweepDeadlines()
		}
		l.fill()
	}
}

func (l *loop) clock() int64 { return int64(time.Since(l.epoch)) }

// waitMillis is how long epoll_wait may sleep: until the next backoff
// ends or the next sweep, rounded up.
func (l *loop) waitMillis() int {
	next := l.sweep
	if len(l.timers) > 0 {
		next = min(next, l.timers[0].at)
	}
	d := next - l.clock()
	if d <= 0 {
		return 0
	}
	return int((d + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

// commands runs what other goroutines sent. The eventfd is read first, so
// that a command sent after the queue is taken wakes the loop again.
func (l *loop) commands() {
	var b [8]byte
	_, _ = unix.Read(l.wakefd, b[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds, l.woken = nil, false
	l.mu.Unlock()
	for _, c := range cmds {
		switch c.op {
		case cmdBounce:
			if c.s.fd >= 0 {
				l.end(c.s, nil, true)
			}
		case cmdDrop:
			// f.dropped is set: every stream ended here, or starting
			// later, is parked.
			for _, s := range l.streams {
				if s.fd >= 0 {
					l.end(s, errDropped, false)
				}
			}
			for _, s := range l.queue[l.qhead:] {
				l.parked = append(l.parked, s)
			}
			clear(l.queue)
			l.queue, l.qhead = l.queue[:0], 0
		case cmdResume:
			parked := l.parked
			l.parked = nil
			for _, s := range parked {
				l.start(s)
			}
		case cmdStop:
			l.stop = true
			return
		}
	}
}

// start opens a connection for s when the loop has an in-flight slot,
// and otherwise queues it for one; while the fleet is dropped, it parks s.
func (l *loop) start(s *streamClient) {
	switch {
	case l.stop:
	case l.f.dropped.Load():
		l.parked = append(l.parked, s)
	case l.free > 0:
		l.free--
		s.holding = true
		l.connect(s)
	default:
		l.queue = append(l.queue, s)
	}
}

// fill starts queued streams while there are free slots.
func (l *loop) fill() {
	for l.free > 0 && l.qhead < len(l.queue) {
		s := l.queue[l.qhead]
		l.queue[l.qhead] = nil
		l.qhead++
		l.start(s)
	}
	if l.qhead == len(l.queue) {
		l.queue, l.qhead = l.queue[:0], 0
	} else if l.qhead > len(l.queue)/2 {
		n := copy(l.queue, l.queue[l.qhead:])
		clear(l.queue[n:])
		l.queue, l.qhead = l.queue[:n], 0
	}
}

// release gives back s's in-flight slot: it is open, or has failed.
func (l *loop) release(s *streamClient) {
	if s.holding {
		s.holding = false
		l.free++
	}
}

// connect makes a non-blocking socket for s, registers it edge-triggered
// (read and write readiness, once for the connection's life) and starts
// connecting. Keep-alive and Nagle, which net.Dialer sets, do not matter
// for a loopback stream that writes once.
func (l *loop) connect(s *streamClient) {
	s.gen++
	s.phase = phConnect
	s.deadline = l.now + int64(openWait)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.end(s, err, false)
		return
	}
	s.fd = int32(fd)
	l.f.connected.Add(1)
	if s.src.IsValid() {
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: s.src.As4()}); err != nil {
			l.end(s, err, false)
			return
		}
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: s.idx, Pad: int32(s.gen)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.end(s, err, false)
		return
	}
	switch err := unix.Connect(fd, l.dst); err {
	case unix.EINPROGRESS:
		// EPOLLOUT says when it is done.
	case nil:
		l.write(s)
	default:
		l.end(s, err, false)
	}
}

// event handles the readiness epoll reported for s's connection.
func (l *loop) event(s *streamClient, ev uint32) {
	const (
		writable = unix.EPOLLOUT | unix.EPOLLERR | unix.EPOLLHUP
		readable = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLERR | unix.EPOLLHUP
	)
	switch {
	case s.phase == phConnect && ev&writable != 0:
		errno, err := unix.GetsockoptInt(int(s.fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && errno != 0 {
			err = unix.Errno(errno)
		}
		if err != nil {
			l.end(s, err, false)
			return
		}
		if !l.write(s) {
			return
		}
	case s.phase == phSend && ev&writable != 0:
		if !l.write(s) {
			return
		}
	}
	if s.phase >= phSend && ev&readable != 0 {
		l.read(s)
	}
}

// write sends the request, or what is left of it; false when that ended
// the connection. A write to a closed socket fails with EPIPE: Go ignores
// SIGPIPE for descriptors other than stdout and stderr.
func (l *loop) write(s *streamClient) bool {
	p := s.out
	if s.phase == phConnect {
		l.req = s.appendRequest(l.req[:0])
		p = l.req
		s.phase = phSend
	}
	for len(p) > 0 {
		n, err := unix.Write(int(s.fd), p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			s.out = append(s.out[:0], p...) // EPOLLOUT says when to go on
			return true
		case err != nil:
			l.end(s, err, false)
			return false
		}
		p = p[n:]
	}
	s.out = nil
	s.phase = phHead
	return true
}

// read reads until the socket has nothing more (edge-triggered: the next
// event comes only with new data), feeding the response reader.
func (l *loop) read(s *streamClient) {
	for {
		n, err := unix.Read(int(s.fd), l.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return
		case err != nil:
			l.end(s, err, false)
			return
		case n == 0:
			l.end(s, s.resp.eof(), false)
			return
		}
		if s.phase == phOpen {
			s.deadline = l.now + int64(idleLimit)
		}
		if err := s.resp.feed(l.buf[:n], s); err != nil {
			l.end(s, err, false)
			return
		}
	}
}

// bodyLine takes a line of the stream's body: the first opens the stream.
func (s *streamClient) bodyLine(line []byte) {
	if s.phase != phOpen {
		s.phase = phOpen
		s.loop.release(s)
		s.deadline = s.loop.now + int64(idleLimit)
		s.f.streamOpened(s)
	}
	s.field(line)
}

// sweepDeadlines ends the connections past their deadline: an open not
// done within openWait, a stream silent for idleLimit.
func (l *loop) sweepDeadlines() {
	l.sweep = l.now + int64(sweepEvery)
	for _, s := range l.streams {
		if s.fd >= 0 && l.now >= s.deadline {
			l.end(s, errTimeout, false)
		}
	}
}

// end closes s's connection and decides what comes next, as a browser
// would: at once after churn; after resume when the fleet is dropped;
// after 100 ms when an open stream ended; after a backoff doubling to 2 s,
// with jitter, when the open failed.
func (l *loop) end(s *streamClient, err error, bounced bool) {
	f := l.f
	if s.fd >= 0 {
		_ = unix.Close(int(s.fd)) // which also takes it out of epoll
		s.fd = -1
		f.connected.Add(-1)
	}
	l.release(s)
	wasOpen := s.phase == phOpen
	failure := s.openError(err)
	s.phase = phIdle
	s.out = nil
	s.resp.reset()
	switch {
	case l.stop:
	case bounced:
		f.churned.Add(1)
		l.start(s)
	case f.dropped.Load():
		l.parked = append(l.parked, s)
	case wasOpen:
		// The server, or something between, ended an open stream.
		f.unexpected.Add(1)
		s.backoff = 100 * time.Millisecond
		l.after(s, s.backoff)
	default:
		f.openFailed(failure)
		s.backoff = min(s.backoff*2, 2*time.Second)
		l.after(s, s.backoff)
	}
}

// openError says how an open failed: a statusError as it is, anything
// else simplified and prefixed by the step it failed at.
func (s *streamClient) openError(err error) error {
	var se *statusError
	if err == nil || errors.As(err, &se) {
		return err
	}
	err = simplifyNetErr(err)
	switch {
	case s.phase <= phConnect:
		return fmt.Errorf("connect: %w", err)
	case s.phase == phSend:
		return fmt.Errorf("send request: %w", err)
	case s.resp.inHead():
		return fmt.Errorf("read headers: %w", err)
	default:
		return fmt.Errorf("read first line: %w", err)
	}
}

// after starts s again after half to all of d.
func (l *loop) after(s *streamClient, d time.Duration) {
	w := wake{at: l.now + int64(d/2) + rng(int64(d/2)), s: s}
	l.timers = append(l.timers, w)
	// Sift up.
	i := len(l.timers) - 1
	for i > 0 {
		p := (i - 1) / 2
		if l.timers[p].at <= w.at {
			break
		}
		l.timers[i] = l.timers[p]
		i = p
	}
	l.timers[i] = w
}

// popTimer takes the earliest backoff off the heap.
func (l *loop) popTimer() *streamClient {
	h := l.timers
	top := h[0].s
	last := h[len(h)-1]
	h[len(h)-1] = wake{}
	h = h[:len(h)-1]
	l.timers = h
	if len(h) == 0 {
		return top
	}
	// Sift last down from the root.
	i := 0
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && h[c+1].at < h[c].at {
			c++
		}
		if last.at <= h[c].at {
			break
		}
		h[i] = h[c]
		i = c
	}
	h[i] = last
	return top
}

// close closes every connection, then the loop's own descriptors; after
// it, commands are dropped.
func (l *loop) close() {
	l.stop = true
	for _, s := range l.streams {
		if s.fd >= 0 {
			_ = unix.Close(int(s.fd))
			s.fd = -1
			l.f.connected.Add(-1)
		}
		l.release(s)
	}
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	if l.wakefd >= 0 {
		_ = unix.Close(l.wakefd)
	}
	if l.epfd >= 0 {
		_ = unix.Close(l.epfd)
	}
}
