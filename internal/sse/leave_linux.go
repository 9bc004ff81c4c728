//go:build linux

package sse

import (
	"errors"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// leaveWatch waits for the clients of every taken-over stream of a Handler
// to leave (or to say something, which an event stream's client never
// does), with one epoll instance for all of them. One goroutine reads it,
// parked in Go's own poller between events: where a goroutine per stream
// blocked in a read cost a stack per idle stream, this costs an entry in
// a map (docs/benchmarks.md, "Memory per idle stream").
//
// Each stream is registered one-shot: its first event ends it (see gone),
// and the kernel forgets a registration when its socket is closed.
type leaveWatch struct {
	ep *os.File // the epoll instance, non-blocking, polled by the runtime
	rc syscall.RawConn

	mu      sync.Mutex
	next    uint64
	streams map[uint64]*stream
}

// newLeaveWatch makes the epoll instance and starts its reader, which
// stops once stop is closed.
func newLeaveWatch(stop <-chan struct{}) (*leaveWatch, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	ep := os.NewFile(uintptr(fd), "epoll") // non-blocking: the runtime polls it
	rc, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		return nil, err
	}
	w := &leaveWatch{ep: ep, rc: rc, streams: make(map[uint64]*stream)}
	go w.run()
	go func() {
		<-stop
		_ = w.ep.Close() // ends run's wait
	}()
	return w, nil
}

// add watches s's connection; false when it cannot (the caller watches it
// some other way).
func (w *leaveWatch) add(s *stream) bool {
	if s.raw == nil {
		return false
	}
	w.mu.Lock()
	w.next++
	token := w.next
	w.streams[token] = s
	s.leave, s.leaveToken = w, token // before gone can see the stream
	w.mu.Unlock()
	var err error
	cerr := w.rc.Control(func(ep uintptr) {
		ctlErr := s.raw.Control(func(fd uintptr) {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(token), Pad: int32(token >> 32)}
			err = unix.EpollCtl(int(ep), unix.EPOLL_CTL_ADD, int(fd), &ev)
		})
		if err == nil {
			err = ctlErr
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		w.remove(s)
		return false
	}
	return true
}

// remove forgets s, which is finishing; its socket's closing removes it
// from the epoll instance.
func (w *leaveWatch) remove(s *stream) {
	w.mu.Lock()
	if s.leaveToken != 0 {
		delete(w.streams, s.leaveToken)
		s.leaveToken = 0
	}
	w.mu.Unlock()
}

// run reads the epoll instance until it is closed.
func (w *leaveWatch) run() {
	events := make([]unix.EpollEvent, 128)
	_ = w.rc.Read(func(ep uintptr) bool {
		for {
			n, err := unix.EpollWait(int(ep), events, 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || n == 0 {
				return err != nil // nothing ready: wait for the poller
			}
			for _, ev := range events[:n] {
				w.gone(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32)
			}
			if n < len(events) {
				return false
			}
		}
	})
}

// gone handles the one event of the stream registered as token: its
// client sent something (counted, as watch does) or left.
func (w *leaveWatch) gone(token uint64) {
	w.mu.Lock()
	s := w.streams[token]
	delete(w.streams, token)
	w.mu.Unlock()
	if s == nil {
		return // finished meanwhile
	}
	var b [1]byte
	n := 0
	_ = s.raw.Read(func(fd uintptr) bool {
		n, _ = unix.Read(int(fd), b[:])
		return true // one try: the socket never blocks here
	})
	if n > 0 {
		s.h.m.StreamsRefused.WithLabelValues(clientInput).Inc()
	}
	s.cancel()
	s.wake(wakeGone)
}
