//go:build !linux

package sse

import (
	"errors"
	"net"
	"syscall"
)

var errWouldBlock = errors.New("sse: would block")

// writeNonBlocking writes nothing where noticed has no writev of its own:
// the pump writes every frame.
func writeNonBlocking(syscall.RawConn, net.Buffers) (int, error) {
	return 0, errWouldBlock
}
