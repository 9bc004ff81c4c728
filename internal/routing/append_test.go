package routing_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/metrics"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/sse"
)

// deaf is a store whose notifications never reach the hub: whatever its
// streams get, they get from Hub.Append's own fan-out.
type deaf struct{ *memstore.Store }

func (d deaf) SetNotifier(routing.Notifier) { d.Store.SetNotifier(nobody{}) }

type nobody struct{}

func (nobody) Changed(string) {}
func (nobody) Resync()        {}
func (nobody) Recheck(string) {}

func hubAppend(t *testing.T, hub *routing.Hub, user, data string) notice.ID {
	t.Helper()
	ids, err := hub.Append(context.Background(), []routing.Message{{User: user, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	return ids[0]
}

// An entry appended through the hub reaches the streams here without
// waiting for a notification, but only while it is next in line: once
// another producer's entry came between, what follows waits for the read
// that entry's notification brings (here, never).
func TestAppendFansOutWhatFollowsTheCursor(t *testing.T) {
	t.Parallel()
	store := deaf{memstore.New(memstore.Options{MaxLen: 1000})}
	hub := routing.New(store, sse.AppendEntry, routing.Options{})
	go hub.Run()
	t.Cleanup(func() { hub.Close(); store.Close() })

	c := subscribe(t, hub, "alice")
	other := subscribe(t, hub, "bob")
	first := hubAppend(t, hub, "alice", "one")
	second := hubAppend(t, hub, "alice", "two")
	for _, want := range []notice.ID{first, second} {
		if f := next(t, c); f.ID != want {
			t.Fatalf("got %v, want %v", f.ID, want)
		}
	}

	publish(t, store, "alice", "from another producer") // not through the hub
	hubAppend(t, hub, "alice", "three")
	hubAppend(t, hub, "carol", "nobody follows carol here")
	if n := c.Queued(); n != 0 {
		t.Fatalf("%d frames queued after another producer's entry came between; want none until a read", n)
	}
	if n := other.Queued(); n != 0 {
		t.Fatalf("bob has %d frames of other users", n)
	}
}

// Appends through the hub from several goroutines, with another producer
// appending to the same user around them, give each stream every entry
// once, in the stream's order: the fan-out at append and the reads do not
// double or reorder what they both see.
func TestAppendRacesReadsWithoutDoubling(t *testing.T) {
	t.Parallel()
	hub, store := newHub(t, routing.Options{QueueLen: 4096})
	const streams, writers, each = 3, 4, 100
	conns := make([]*routing.Conn, streams)
	for i := range conns {
		conns[i] = subscribe(t, hub, "alice")
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := []routing.Message{{User: "alice", Data: fmt.Sprint(w, ":", i)}}
				var err error
				if w == 0 {
					_, err = store.Append(context.Background(), m)
				} else {
					_, err = hub.Append(context.Background(), m)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b, err := store.Read(context.Background(), []routing.Cursor{{User: "alice", Count: writers * each}})
	if err != nil {
		t.Fatal(err)
	}
	var want []notice.ID
	for _, e := range b[0].Entries {
		want = append(want, e.ID)
	}
	if len(want) != writers*each {
		t.Fatalf("the store holds %d entries, want %d", len(want), writers*each)
	}
	for i, c := range conns {
		var got []notice.ID
		deadline := time.After(10 * time.Second)
		for len(got) < len(want) {
			select {
			case f := <-c.Frames():
				got = append(got, f.ID)
			case <-deadline:
				t.Fatalf("stream %d got %d of %d entries", i, len(got), len(want))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("stream %d got the entries out of order or doubled", i)
		}
		if n := c.Queued(); n != 0 {
			t.Fatalf("stream %d has %d frames more than were appended", i, n)
		}
	}
}

// An entry taken for fan-out is counted once, whether the append's own
// fan-out or the read its notification brings took it first.
func TestAppendCountsEachEntryOnce(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	store := memstore.New(memstore.Options{MaxLen: 1000})
	hub := routing.New(store, sse.AppendEntry, routing.Options{QueueLen: 1024, Metrics: m})
	go hub.Run()
	t.Cleanup(func() { store.Close() })
	c := subscribe(t, hub, "alice")
	const n = 300
	for i := range n {
		hubAppend(t, hub, "alice", fmt.Sprint(i))
	}
	for range n {
		next(t, c)
	}
	hub.Close() // the reader has stopped: nothing more is counted
	if got := testutil.ToFloat64(m.EventsRead); got != n {
		t.Fatalf("noticed_events_read_total is %v for %d entries", got, n)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "noticed_event_read_delay_seconds" {
			if got := f.GetMetric()[0].GetHistogram().GetSampleCount(); got != n {
				t.Fatalf("noticed_event_read_delay_seconds counted %d waits for %d entries", got, n)
			}
			return
		}
	}
	t.Fatal("noticed_event_read_delay_seconds is not registered")
}
