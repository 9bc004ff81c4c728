package redisstore

import (
	"testing"

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
