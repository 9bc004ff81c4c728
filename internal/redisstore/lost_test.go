package redisstore

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
)

// A reader whose own cursor is past the newest entry (Redis lost what it
// had read) leaves a marker: a reader below it gets a gap, the reader
// itself does not, and neither sees the marker as an entry. A cursor a
// client made up leaves nothing.
func TestLossMarker(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	ctx := testCtx(t)
	u := user("lost")
	ids, err := s.Append(ctx, []routing.Message{{User: u, Data: "a"}, {User: u, Data: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	ahead := notice.ID{Ms: ids[1].Ms + 1000}
	b := read1(t, s, routing.Cursor{User: u, After: ahead, Count: 10, CheckGap: true})
	if !b.Ahead || !b.Gap {
		t.Fatalf("made-up cursor: %+v, want Ahead and Gap", b)
	}
	if n := rawClient(t, srv).XLen(ctx, s.key(u)).Val(); n != 2 {
		t.Fatalf("a client's cursor left %d entries, want the 2 appended", n)
	}
	if b = read1(t, s, routing.Cursor{User: u, After: ahead, Count: 10, CheckGap: true, Delivered: true}); !b.Ahead {
		t.Fatalf("delivered cursor: %+v, want Ahead", b)
	}
	later, err := s.Append(ctx, []routing.Message{{User: u, Data: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	behind := read1(t, s, routing.Cursor{User: u, After: ids[0], Count: 10})
	if !behind.Gap || len(behind.Entries) != 2 || behind.Entries[0].ID != ids[1] || behind.Entries[1].ID != later[0] {
		t.Errorf("reader below the marker: %+v, want a gap and the two entries", behind)
	}
	at := read1(t, s, routing.Cursor{User: u, After: ahead, Count: 10, CheckGap: true, Delivered: true})
	if at.Gap || at.Ahead || len(at.Entries) != 1 || at.Entries[0].ID != later[0] {
		t.Errorf("reader at the marker: %+v, want only the later entry", at)
	}
}

// A failover can erase the entry a reader last read and then take newer
// ones: the cursor is not ahead, but its entry is gone though nothing
// trimmed or deleted it. The reader's gap check marks the loss after the
// newest entry; a reader below it gets a gap, once.
func TestLossUnderNewerEntries(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	ctx := testCtx(t)
	u := user("lost-under")
	raw := rawClient(t, srv)
	first, err := s.Append(ctx, []routing.Message{{User: u, Data: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	// What a reader read on the old master: an id between a and the
	// entry the new master took next.
	erased := notice.ID{Ms: first[0].Ms + 10}
	newer := notice.ID{Ms: first[0].Ms + 20}
	if err := raw.XAdd(ctx, &redis.XAddArgs{Stream: s.key(u), ID: newer.String(), Values: []any{"data", "c"}}).Err(); err != nil {
		t.Fatal(err)
	}
	a := read1(t, s, routing.Cursor{User: u, After: erased, Count: 10, CheckGap: true, Delivered: true})
	if a.Ahead || !a.Gap || len(a.Entries) != 1 || a.Entries[0].ID != newer {
		t.Fatalf("reader whose entry was erased: %+v, want a gap (it may skip entries below its cursor) and the newer entry", a)
	}
	if n := raw.XLen(ctx, s.key(u)).Val(); n != 3 {
		t.Fatalf("stream holds %d entries, want a, c and one marker", n)
	}
	b := read1(t, s, routing.Cursor{User: u, After: first[0], Count: 10})
	if !b.Gap || len(b.Entries) != 1 || b.Entries[0].ID != newer {
		t.Errorf("reader below the erased entry: %+v, want a gap and the newer entry", b)
	}
	// The marker is seen: reading again from the erased id adds no other.
	read1(t, s, routing.Cursor{User: u, After: erased, Count: 10, CheckGap: true, Delivered: true})
	if n := raw.XLen(ctx, s.key(u)).Val(); n != 3 {
		t.Errorf("stream holds %d entries after a second check, want 3", n)
	}
	// A client's made-up cursor between entries marks nothing.
	read1(t, s, routing.Cursor{User: u, After: notice.ID{Ms: first[0].Ms + 5}, Count: 10, CheckGap: true})
	if n := raw.XLen(ctx, s.key(u)).Val(); n != 3 {
		t.Errorf("a client's cursor added a marker: %d entries", n)
	}
}
