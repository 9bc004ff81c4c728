package routing_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/sse"
)

// flakyStore is the memory backend with reads that a test can hold back
// or fail, as a slow or unreachable Redis would.
type flakyStore struct {
	*memstore.Store
	hold   sync.RWMutex // write-locked (holdReads): reads wait
	held   atomic.Bool  // the test holds hold
	down   atomic.Bool  // reads fail
	failed atomic.Int64 // reads failed so far
}

// holdReads makes the hub's reads wait, as behind a slow Redis, until
// releaseReads.
func (f *flakyStore) holdReads() {
	f.hold.Lock()
	f.held.Store(true)
}

func (f *flakyStore) releaseReads() {
	if f.held.CompareAndSwap(true, false) {
		f.hold.Unlock()
	}
}

func (f *flakyStore) Read(ctx context.Context, cs []routing.Cursor) ([]routing.Batch, error) {
	f.hold.RLock()
	defer f.hold.RUnlock()
	if f.down.Load() {
		f.failed.Add(1)
		return nil, routing.ErrUnavailable
	}
	return f.Store.Read(ctx, cs)
}

func newFlakyHub(t *testing.T, maxLen int, opts routing.Options) (*routing.Hub, *flakyStore) {
	store := &flakyStore{Store: memstore.New(memstore.Options{MaxLen: maxLen})}
	hub := routing.New(store, sse.AppendEntry, opts)
	go hub.Run()
	t.Cleanup(func() {
		store.releaseReads() // a test that failed while holding them
		hub.Close()
		store.Close()
	})
	return hub, store
}

// wantGap asserts the stream's next frame announces a loss, and that no
// entry came before it.
func wantGap(t *testing.T, c *routing.Conn) {
	t.Helper()
	select {
	case f := <-c.Frames():
		if !f.Gap {
			t.Fatalf("got entry %s, want a gap first", f.ID)
		}
	case <-c.Kicked():
		t.Fatal("stream closed, want it kept open and told of the gap")
	case <-time.After(10 * time.Second):
		t.Fatal("no gap announced")
	}
}

func TestStreamsOfAUserWhoseEntriesWereTrimmedUnreadAreToldOfTheGap(t *testing.T) {
	hub, store := newFlakyHub(t, 10, routing.Options{TrimLen: 10})
	publish(t, store, "ann", "seen")
	c := subscribe(t, hub, "ann")
	store.holdReads() // the hub falls behind
	for range 30 {
		publish(t, store, "ann", "x")
	}
	store.releaseReads()
	wantGap(t, c)
	if f := next(t, c); f.Gap {
		t.Fatal("two gaps for one loss")
	}
}

func TestStreamsAreToldOfEntriesLostWhileTheStoreWasDown(t *testing.T) {
	// No TrimLen: only the failed reads tell the hub to check.
	hub, store := newFlakyHub(t, 10, routing.Options{})
	publish(t, store, "bea", "seen")
	c := subscribe(t, hub, "bea")
	store.down.Store(true)
	publish(t, store, "bea", "x")
	waitFor(t, "a read to fail", func() bool { return store.failed.Load() > 0 })
	for range 30 {
		publish(t, store, "bea", "x")
	}
	store.down.Store(false)
	wantGap(t, c)
}

func TestAHubThatKeepsUpClosesNothing(t *testing.T) {
	hub, store := newFlakyHub(t, 10, routing.Options{TrimLen: 10})
	c := subscribe(t, hub, "cy")
	for i := range 100 {
		id := publish(t, store, "cy", "x")
		if f := next(t, c); f.ID != id {
			t.Fatalf("event %d: got %s, want %s", i, f.ID, id)
		}
	}
	if c.Queued() != 0 {
		t.Fatal("a gap announced to a stream that kept up")
	}
}
