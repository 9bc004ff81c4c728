package routing_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/sse"
)

func newHub(t testing.TB, opts routing.Options) (*routing.Hub, *memstore.Store) {
	t.Helper()
	store := memstore.New(memstore.Options{MaxLen: 100000})
	hub := routing.New(store, sse.AppendEntry, opts)
	go hub.Run()
	t.Cleanup(func() {
		hub.Close()
		store.Close()
	})
	return hub, store
}

func subscribe(t testing.TB, hub *routing.Hub, user string) *routing.Conn {
	t.Helper()
	c, err := hub.Subscribe(user)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", user, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return c
}

func publish(t testing.TB, store routing.Store, user, data string) notice.ID {
	t.Helper()
	ids, err := store.Append(context.Background(), []routing.Message{{User: user, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	return ids[0]
}

func next(t *testing.T, c *routing.Conn) *routing.Frame {
	t.Helper()
	select {
	case f := <-c.Frames():
		return f
	case <-time.After(5 * time.Second):
		t.Fatalf("no frame for %s", c.User())
		return nil
	}
}

func TestEveryStreamOfAUserGetsEachEventAndNoOneElseDoes(t *testing.T) {
	t.Parallel()
	hub, store := newHub(t, routing.Options{})
	a1, a2 := subscribe(t, hub, "alice"), subscribe(t, hub, "alice")
	b := subscribe(t, hub, "bob")
	id1 := publish(t, store, "alice", "one")
	id2 := publish(t, store, "alice", "two")
	for _, c := range []*routing.Conn{a1, a2} {
		if f := next(t, c); f.ID != id1 {
			t.Errorf("first frame %v, want %v", f.ID, id1)
		}
		if f := next(t, c); f.ID != id2 {
			t.Errorf("second frame %v, want %v", f.ID, id2)
		}
	}
	idb := publish(t, store, "bob", "for bob")
	if f := next(t, b); f.ID != idb {
		t.Errorf("bob got %v, want only %v", f.ID, idb)
	}
	select {
	case f := <-a1.Frames():
		t.Errorf("alice got bob's %v", f.ID)
	default:
	}
}

func TestStartIsTheNewestEntry(t *testing.T) {
	t.Parallel()
	hub, store := newHub(t, routing.Options{})
	publish(t, store, "carol", "old")
	last := publish(t, store, "carol", "newest")
	c, err := hub.Subscribe("carol")
	if err != nil {
		t.Fatal(err)
	}
	start, err := c.Start(context.Background())
	if err != nil || start != last {
		t.Fatalf("Start = %v, %v; want %v", start, err, last)
	}
	id := publish(t, store, "carol", "live")
	if f := next(t, c); f.ID != id {
		t.Errorf("got %v, want %v", f.ID, id)
	}
}

func TestSlowStreamIsClosedOthersContinue(t *testing.T) {
	t.Parallel()
	hub, store := newHub(t, routing.Options{QueueLen: 4})
	stalled := subscribe(t, hub, "dave")
	reader := subscribe(t, hub, "dave")
	var got []notice.ID
	for i := range 20 {
		publish(t, store, "dave", fmt.Sprint(i))
		got = append(got, next(t, reader).ID)
	}
	if len(got) != 20 {
		t.Fatalf("reader got %d of 20", len(got))
	}
	select {
	case <-stalled.Kicked():
	case <-time.After(5 * time.Second):
		t.Fatal("a stream that never reads was not closed as slow")
	}
	select {
	case <-reader.Kicked():
		t.Fatal("the reading stream was closed too")
	default:
	}
}

func TestFollowsOnlyWhileAStreamIsOpen(t *testing.T) {
	t.Parallel()
	hub, store := newHub(t, routing.Options{})
	c1, c2 := subscribe(t, hub, "erin"), subscribe(t, hub, "erin")
	if n := store.Followed(); n != 1 {
		t.Fatalf("followed %d users, want 1", n)
	}
	hub.Unsubscribe(c1)
	if n := store.Followed(); n != 1 {
		t.Fatalf("after one of two streams closed: followed %d, want 1", n)
	}
	hub.Unsubscribe(c2)
	waitFor(t, "unfollow", func() bool { return store.Followed() == 0 && hub.Followed() == 0 })

	// Reopening at once, even while the unfollow may be under way, follows
	// again and delivers.
	for range 20 {
		c := subscribe(t, hub, "erin")
		id := publish(t, store, "erin", "again")
		if f := next(t, c); f.ID != id {
			t.Fatalf("got %v, want %v", f.ID, id)
		}
		hub.Unsubscribe(c)
	}
	waitFor(t, "unfollow", func() bool { return store.Followed() == 0 && hub.Followed() == 0 })
}

func TestLimits(t *testing.T) {
	t.Parallel()
	hub, _ := newHub(t, routing.Options{MaxConnsPerUser: 2, MaxConns: 3})
	subscribe(t, hub, "f")
	subscribe(t, hub, "f")
	if _, err := hub.Subscribe("f"); err != routing.ErrUserLimit {
		t.Errorf("third stream of a user: %v, want ErrUserLimit", err)
	}
	subscribe(t, hub, "g")
	if _, err := hub.Subscribe("h"); err != routing.ErrFull {
		t.Errorf("fourth stream: %v, want ErrFull", err)
	}
}

func TestConcurrentUsersAreIsolated(t *testing.T) {
	t.Parallel()
	hub, store := newHub(t, routing.Options{QueueLen: 1000})
	const users, streams, events = 20, 3, 30
	var wg sync.WaitGroup
	errs := make(chan error, users*streams)
	for u := range users {
		user := fmt.Sprintf("u%d", u)
		for range streams {
			c := subscribe(t, hub, user)
			wg.Go(func() {
				for i := range events {
					select {
					case f := <-c.Frames():
						want := fmt.Sprintf("data: %s/%d\n", user, i)
						if got := string(f.Bytes); !contains(got, want) {
							errs <- fmt.Errorf("%s stream got %q, want %q", user, got, want)
							return
						}
					case <-time.After(10 * time.Second):
						errs <- fmt.Errorf("%s: timed out at event %d", user, i)
						return
					}
				}
			})
		}
	}
	for i := range events {
		for u := range users {
			publish(t, store, fmt.Sprintf("u%d", u), fmt.Sprintf("u%d/%d", u, i))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func contains(s, sub string) bool {
	return strings.Contains(s, sub)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
