package e2e

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
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
	base   string
	url    string
	client *http.Client
	// reauth, when set, stands for the page's own code: on a 401 (its
	// token expired) it gets a fresh token and opens a new EventSource
	// with lastEventId in the URL, instead of giving up.
	reauth func() string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	lastID  string
	retry   time.Duration
	events  []sse.Event
	conns   []connection
	failure error // the answer that made it give up
	done    chan struct{}
	hangUp  context.CancelFunc // ends the current request
	reauths int                // new EventSources opened after a 401
	fresh   bool               // the next request is a new EventSource's first
}

// connection is one accepted request of an eventSource.
type connection struct {
	requested   time.Time // when the request was sent
	opened      time.Time // when the 200 arrived
	lastEventID string    // the id it resumed from: Last-Event-ID, or lastEventId in a new EventSource's URL
	droppedAt   time.Time // when the stream ended (zero while open)
	firstEvent  int       // index in events of its first event
	heldAtDrop  string    // the browser's last event id when the stream ended
}

const defaultRetry = 3 * time.Second

// openEventSource starts connecting to base/notice with token in the
// query string, as a page does. It runs until ctx ends.
func openEventSource(ctx context.Context, client *http.Client, base, user, token string) *eventSource {
	return openEventSourceWith(ctx, client, base, user, token, nil)
}

// resumeEventSource is openEventSource for a browser that had the event
// lastID before: it connects with Last-Event-ID, as when it comes back
// online.
func resumeEventSource(ctx context.Context, client *http.Client, base, user, token, lastID string) *eventSource {
	es := newEventSource(client, base, user, token, nil)
	es.lastID = lastID
	go es.run(ctx)
	return es
}

// openEventSourceWith is openEventSource with a reauth hook.
func openEventSourceWith(ctx context.Context, client *http.Client, base, user, token string, reauth func() string) *eventSource {
	es := newEventSource(client, base, user, token, reauth)
	go es.run(ctx)
	return es
}

func newEventSource(client *http.Client, base, user, token string, reauth func() string) *eventSource {
	return &eventSource{
		user:    user,
		base:    base,
		reauth:  reauth,
		url:     base + "/notice?token=" + url.QueryEscape(token),
		client:  client,
		changed: make(chan struct{}),
		retry:   defaultRetry,
		done:    make(chan struct{}),
	}
}

// notify wakes the waiters; the caller holds mu.
func (es *eventSource) notify() {
	close(es.changed)
	es.changed = make(chan struct{})
}

func (es *eventSource) run(ctx context.Context) {
	defer close(es.done)
	for {
		again := es.connect(ctx)
		es.mu.Lock()
		failed, wait := es.failure != nil, es.retry
		es.mu.Unlock()
		if failed || ctx.Err() != nil {
			return
		}
		if again {
			continue
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
// It returns true when a new EventSource is to connect at once (reauth).
func (es *eventSource) connect(ctx context.Context) bool {
	ctx, hangUp := context.WithCancel(ctx)
	defer hangUp()
	es.mu.Lock()
	es.hangUp = hangUp
	target, fresh := es.url, es.fresh
	es.fresh = false
	c := connection{requested: time.Now(), lastEventID: es.lastID}
	es.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		es.fail(err)
		return false
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if c.lastEventID != "" && !fresh {
		req.Header.Set("Last-Event-ID", c.lastEventID)
	}
	resp, err := es.client.Do(req)
	if err != nil {
		return false // a network error: try again after the delay
	}
	defer resp.Body.Close()
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode == http.StatusUnauthorized && es.reauth != nil {
		// What a page does when its EventSource closes for good over an
		// expired token: a new one, with a new token, from the last id.
		es.mu.Lock()
		es.url = es.base + "/notice?token=" + url.QueryEscape(es.reauth())
		if es.lastID != "" {
			es.url += "&lastEventId=" + url.QueryEscape(es.lastID)
		}
		es.fresh = true
		es.reauths++
		es.notify()
		es.mu.Unlock()
		return true
	}
	if resp.StatusCode != http.StatusOK || mediaType != "text/event-stream" {
		es.fail(fmt.Errorf("GET /notice for %s answered %s (%s): a browser gives up here", es.user, resp.Status, resp.Header.Get("Content-Type")))
		return false
	}
	es.mu.Lock()
	c.opened = time.Now()
	c.firstEvent = len(es.events)
	es.conns = append(es.conns, c)
	n := len(es.conns) - 1
	es.notify()
	es.mu.Unlock()

	body := &tailReader{r: resp.Body}
	r := sse.NewReader(body)
	for {
		ev, err := r.Next()
		es.mu.Lock()
		if retry := r.Retry(); retry > 0 {
			es.retry = time.Duration(retry) * time.Millisecond
		}
		if err != nil {
			// A block with an id and no data (noticed sends one first)
			// fires no event, yet the browser keeps its id, unless the
			// stream was cut in the middle of a block.
			if body.endsBlock() && r.LastID() != "" {
				es.lastID = r.LastID()
			}
			es.conns[n].droppedAt = time.Now()
			es.conns[n].heldAtDrop = es.lastID
			es.notify()
			es.mu.Unlock()
			return false
		}
		// The reader starts afresh on each connection; the browser's id
		// carries over until the stream sets another.
		if id := r.LastID(); id != "" {
			es.lastID = id
		}
		ev.ID = es.lastID // what the browser's lastEventId says
		es.events = append(es.events, ev)
		es.notify()
		es.mu.Unlock()
	}
}

// tailReader remembers the last bytes read through it. When the reader on
// top of it has failed, it has parsed everything read, so those bytes tell
// whether the stream ended between blocks.
type tailReader struct {
	r    io.Reader
	tail []byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.tail = append(t.tail, p[:n]...)
	if len(t.tail) > 4 {
		t.tail = t.tail[len(t.tail)-4:]
	}
	return n, err
}

// endsBlock is true when the stream so far ends with a blank line.
func (t *tailReader) endsBlock() bool {
	s := string(t.tail)
	return strings.HasSuffix(s, "\n\n") || strings.HasSuffix(s, "\r\r") || strings.HasSuffix(s, "\r\n\r\n")
}

// drop ends the current connection from the client's side, as a network
// blip does; the source reconnects after its retry delay.
func (es *eventSource) drop() {
	es.mu.Lock()
	hangUp := es.hangUp
	es.mu.Unlock()
	if hangUp != nil {
		hangUp()
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

// describe tells a stream's history, for failure messages.
func (es *eventSource) describe() string {
	es.mu.Lock()
	defer es.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "stream of %q: %d events, last id %q, %d new EventSources after a 401, failure %v; connections:", es.user, len(es.events), es.lastID, es.reauths, es.failure)
	for i, c := range es.conns {
		dropped := "open"
		if !c.droppedAt.IsZero() {
			dropped = "dropped " + c.droppedAt.Format("15:04:05.000")
		}
		fmt.Fprintf(&b, " #%d asked %s opened %s from %q, %s, first event %d;", i+1,
			c.requested.Format("15:04:05.000"), c.opened.Format("15:04:05.000"), c.lastEventID, dropped, c.firstEvent)
	}
	return b.String()
}
