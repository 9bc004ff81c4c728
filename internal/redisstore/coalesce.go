package redisstore

import "sync"

// coalescer sends requests that arrive together in one pipeline: while
// inFlight pipelines are under way, new requests queue, and the next
// pipeline takes the whole queue (up to limit by size). A lone request is
// sent at once, on its caller's goroutine, so coalescing costs nothing
// when there is nothing to coalesce; under load it saves a round trip, its
// system calls and Redis's per-call I/O for every request but the first
// of a pipeline. Appends and the read-backs of opening streams use it.
type coalescer[R any] struct {
	inFlight int
	limit    int          // the size a pipeline takes at most (one request at least)
	size     func(R) int  // a request's size
	send     func(rs []R) // sends rs in one pipeline and answers them

	mu      sync.Mutex
	queue   []R
	sending int // pipelines under way
}

// submit sends r now, on the caller's goroutine, or queues it when
// inFlight pipelines are under way (the next of them to finish takes the
// queue). It returns once r is sent or queued; send answers it.
func (c *coalescer[R]) submit(r R) {
	c.mu.Lock()
	if c.sending >= c.inFlight {
		c.queue = append(c.queue, r)
		c.mu.Unlock()
		return
	}
	// Nothing waits in the queue while fewer pipelines are under way.
	c.sending++
	c.mu.Unlock()
	c.run([]R{r})
}

// take removes up to limit's worth of requests from the head of the queue
// (at least one when it is not empty). The caller holds c.mu.
func (c *coalescer[R]) take() []R {
	n, size := 0, 0
	for n < len(c.queue) && (n == 0 || size+c.size(c.queue[n]) <= c.limit) {
		size += c.size(c.queue[n])
		n++
	}
	batch := make([]R, n)
	copy(batch, c.queue)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return batch
}

// run sends batch, then passes on to a goroutine of its own whatever
// queued meanwhile: the caller's answer does not wait for others'. Should
// send panic, the pipeline's slot is given back, so that later requests
// are still sent.
func (c *coalescer[R]) run(batch []R) {
	sent := false
	defer func() {
		if !sent {
			c.mu.Lock()
			c.sending--
			c.mu.Unlock()
		}
	}()
	c.send(batch)
	sent = true
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.sending--
		c.mu.Unlock()
		return
	}
	next := c.take()
	c.mu.Unlock()
	go c.run(next)
}
