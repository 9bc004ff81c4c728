//go:build !linux

package sse

import "errors"

// leaveWatch is epoll's (leave_linux.go); elsewhere each stream keeps a
// goroutine reading its connection (watch).
type leaveWatch struct{}

func newLeaveWatch(<-chan struct{}) (*leaveWatch, error) {
	return nil, errors.New("no epoll here")
}

func (*leaveWatch) add(*stream) bool { return false }
func (*leaveWatch) remove(*stream)   {}
