package e2e

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/noticed/noticed/internal/sse"
)

// eventSource does what a browser's EventSource does, so the tests see
// what browsers would: it keeps the last event id across connections,
// reconnects after the stream's retry: delay (3 s until one is given)
// sending Last-Event-ID, and gives up for good on any answer that is not
// 200 text/event-stream.
type eventSource struct {
	user   string
	url    string
	client *http.Client

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	lastID  string
	retry   time.Duration
	events  []sse.Event
	conns   []connection
	failure error // the answer that made it give up
	done    chan struct{}
}

// connection is one accepted request of an eventSource.
type connection struct {
	requested   time.Time // when the request was sent
	opened      time.Time // when the 200 arrived
	lastEventID string    // the Last-Event-ID header it sent
	droppedAt   time.Time // when the stream ended (zero while open)
	firstEvent  int       // index in events of its first event
}

const defaultRetry = 3 * time.Second

// openEventSource starts connecting to base/notice with token in the
// query string, as a page does. It runs until ctx ends.
func openEventSource(ctx context.Context, client *http.Client, base, user, token string) *eventSource {
	es := &eventSource{
		user:    user,
		url:     base + "/notice?token=" + url.QueryEscape(token),
		client:  client,
		changed: make(chan struct{}),
		retry:   defaultRetry,
		done:    make(chan struct{}),
	}
	go es.run(ctx)
	return es
}

// notify wakes the waiters; the caller holds mu.
func (es *eventSource) notify() {
	close(es.changed)
	es.changed = make(chan struct{})
}

func (es *eventSource) run(ctx context.Context) {
	defer close(es.done)
	for {
		es.connect(ctx)
		es.mu.Lock()
		failed, wait := es.failure != nil, es.retry
		es.mu.Unlock()
		if failed || ctx.Err() != nil {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// connect makes one request and reads its events until the stream ends.
func (es *eventSource) connect(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, es.url, nil)
	if err != nil {
		es.fail(err)
		return
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	es.mu.Lock()
	c := connection{requested: time.Now(), lastEventID: es.lastID}
	es.mu.Unlock()
	if c.lastEventID != "" {
		req.Header.Set("Last-Event-ID", c.lastEventID)
	}
	resp, err := es.client.Do(req)
	if err != nil {
		return // a network error: try again after the delay
	}
	defer resp.Body.Close()
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || mediaType != "text/event-stream" {
		es.fail(fmt.Errorf("GET /notice for %s answered %s (%s): a browser gives up here", es.user, resp.Status, resp.Header.Get("Content-Type")))
		return
	}
	es.mu.Lock()
	c.opened = time.Now()
	c.firstEvent = len(es.events)
	es.conns = append(es.conns, c)
	n := len(es.conns) - 1
	es.notify()
	es.mu.Unlock()

	r := sse.NewReader(resp.Body)
	for {
		ev, err := r.Next()
		es.mu.Lock()
		if retry := r.Retry(); retry > 0 {
			es.retry = time.Duration(retry) * time.Millisecond
		}
		if err != nil {
			es.conns[n].droppedAt = time.Now()
			es.notify()
			es.mu.Unlock()
			return
		}
		if ev.HasID {
			es.lastID = ev.ID
		}
		ev.ID = es.lastID // what the browser's lastEventId says
		es.events = append(es.events, ev)
		es.notify()
		es.mu.Unlock()
	}
}

func (es *eventSource) fail(err error) {
	es.mu.Lock()
	es.failure = err
	es.notify()
	es.mu.Unlock()
}

// wait returns once cond, called under the lock, holds; an error when
// ctx ends first or the source gave up.
func (es *eventSource) wait(ctx context.Context, what string, cond func(es *eventSource) bool) error {
	for {
		es.mu.Lock()
		ok, failure, changed := cond(es), es.failure, es.changed
		es.mu.Unlock()
		switch {
		case ok:
			return nil
		case failure != nil:
			return failure
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("stream of %s: waiting for %s: %w", es.user, what, ctx.Err())
		}
	}
}

// waitOpen waits for the stream to be open (again, when it was before).
func (es *eventSource) waitOpen(ctx context.Context, times int) error {
	return es.wait(ctx, fmt.Sprintf("connection #%d", times), func(es *eventSource) bool {
		return len(es.conns) >= times && es.conns[times-1].droppedAt.IsZero()
	})
}

// waitID waits for the event with the given id.
func (es *eventSource) waitID(ctx context.Context, id string) error {
	return es.wait(ctx, "event "+id, func(es *eventSource) bool {
		for i := len(es.events) - 1; i >= 0; i-- {
			if es.events[i].ID == id {
				return true
			}
		}
		return false
	})
}

// snapshot copies what the source has seen.
func (es *eventSource) snapshot() ([]sse.Event, []connection, error) {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]sse.Event(nil), es.events...), append([]connection(nil), es.conns...), es.failure
}
