// This file holds the batch, one writev of the pump or the fan-out's goroutine: small
// frames are copied together, large ones referenced where the hub keeps
// them, so that a stream that stops reading holds no copy of its queue.
// Batches are pooled, since a write is made for every wake.

package sse

import (
	"net"
	"sync"
)

// copyBelow is the size under which a frame is copied into a batch's
// buffer; larger frames are written from where the hub keeps them, so a
// stream that stops reading holds references to its queue, not a copy.
const copyBelow = 1 << 10

// batch is one write of a stream: runs of small frames copied together,
// large frames referenced, all sent with one writev.
type batch struct {
	small []byte
	mark  int // small[:mark] is already in vec
	vec   net.Buffers
}

func (b *batch) add(p []byte) {
	if len(p) < copyBelow {
		b.small = append(b.small, p...)
		return
	}
	b.cut()
	b.vec = append(b.vec, p)
}

// cut ends the current run of small frames.
func (b *batch) cut() {
	if len(b.small) > b.mark {
		b.vec = append(b.vec, b.small[b.mark:len(b.small):len(b.small)])
		b.mark = len(b.small)
	}
}

// buffers returns what the batch writes. Appending to small after cut
// never moves bytes an earlier run refers to: a grown buffer is a copy.
func (b *batch) buffers() net.Buffers {
	b.cut()
	return b.vec
}

var batchPool = sync.Pool{New: func() any { return &batch{small: make([]byte, 0, 4096)} }}

func getBatch() *batch { return batchPool.Get().(*batch) }

func putBatch(b *batch) {
	if cap(b.small) > maxKeptBuffer {
		b.small = make([]byte, 0, 4096)
	}
	b.small, b.mark = b.small[:0], 0
	clear(b.vec[:cap(b.vec)]) // the frames go back to the hub's care
	b.vec = b.vec[:0]
	batchPool.Put(b)
}
