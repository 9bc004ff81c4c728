package sse

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

var errWouldBlock = unix.EAGAIN

// writeNonBlocking writes v to rc's socket with one writev, without
// waiting for room: it returns how much the socket took, and
// errWouldBlock when it took nothing.
func writeNonBlocking(rc syscall.RawConn, v net.Buffers) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for {
			if len(v) == 1 {
				n, werr = unix.Write(int(fd), v[0])
			} else {
				n, werr = unix.Writev(int(fd), v)
			}
			if !errors.Is(werr, unix.EINTR) {
				return true // never wait for the poller: the pump does
			}
		}
	})
	if n < 0 {
		n = 0
	}
	if err != nil {
		return n, err
	}
	return n, werr
}
