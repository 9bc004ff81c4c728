package main

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// recorder collects what the subscribers receive. Events are told apart by
// their send time: those stamped before the measured window opened are
// warm-up, counted for loss but not for latency.
type recorder struct {
	windowStart atomic.Int64 // unix ns; 0 while warming up

	warmup   atomic.Int64 // distinct warm-up events received
	measured atomic.Int64 // distinct measured events received
	dups     atomic.Int64 // an id a stream had already received
	kicked   atomic.Int64 // streams closed as too slow
	bad      atomic.Int64 // frames without a send time in their data

	mu  sync.Mutex
	lat []time.Duration // measured events only
}

func (r *recorder) received() int64 { return r.warmup.Load() + r.measured.Load() }

// drain receives c's frames until done is closed or the hub drops c as
// slow. It runs once per stream, as a stream handler would.
func (r *recorder) drain(c *routing.Conn, done <-chan struct{}) {
	var seen map[notice.ID]struct{}
	for {
		select {
		case f := <-c.Frames():
			now := time.Now().UnixNano()
			sent, ok := sendTime(f.Bytes)
			if !ok {
				r.bad.Add(1)
				continue
			}
			if seen == nil {
				seen = make(map[notice.ID]struct{}, 4)
			}
			if _, dup := seen[f.ID]; dup {
				r.dups.Add(1)
				continue
			}
			seen[f.ID] = struct{}{}
			if start := r.windowStart.Load(); start == 0 || sent < start {
				r.warmup.Add(1)
				continue
			}
			r.measured.Add(1)
			r.mu.Lock()
			r.lat = append(r.lat, time.Duration(now-sent))
			r.mu.Unlock()
		case <-c.Kicked():
			r.kicked.Add(1)
			return
		case <-done:
			return
		}
	}
}

// sendTime reads the publisher's stamp (unix nanoseconds) from the frame's
// data line: "id: <id>\ndata: <ns>\n\n".
func sendTime(frame []byte) (int64, bool) {
	_, rest, ok := bytes.Cut(frame, []byte("\ndata: "))
	if !ok {
		return 0, false
	}
	line, _, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return 0, false
	}
	ns, err := strconv.ParseInt(string(line), 10, 64)
	return ns, err == nil && ns > 0
}
