package redisstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
)

var notice1 = notice.ID{Ms: 1}

func TestProducerEntriesKeepFieldOrder(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	raw := rawClient(t, srv)
	u := user("order")
	key := s.key(u)

	first, err := s.Append(testCtx(t), []routing.Message{{User: u, Event: "a", Data: "published"}})
	if err != nil {
		t.Fatal(err)
	}
	// Field names a Go map would likely reorder, and a quote to escape.
	var fields []any
	for _, f := range []string{"zeta", "alpha", "mid", "event", "quote", "beta"} {
		v := f + "-v"
		if f == "event" {
			v = "order.shipped"
		}
		if f == "quote" {
			v = `say "hi"`
		}
		fields = append(fields, f, v)
	}
	prodID, err := raw.XAdd(testCtx(t), &redis.XAddArgs{Stream: key, Values: fields}).Result()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.Append(testCtx(t), []routing.Message{{User: u, Data: "again"}, {User: u, Event: "b", Data: ""}})
	if err != nil {
		t.Fatal(err)
	}

	got := read1(t, s, routing.Cursor{User: u, Count: 10})
	want := []notice.Entry{
		{ID: first[0], Event: "a", Data: "published"},
		{ID: mustID(t, prodID), Event: "order.shipped", Data: `{"zeta":"zeta-v","alpha":"alpha-v","mid":"mid-v","quote":"say \"hi\"","beta":"beta-v"}`},
		{ID: last[0], Data: "again"},
		{ID: last[1], Event: "b", Data: ""},
	}
	if fmt.Sprint(got.Entries) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got.Entries, want)
	}
	for i := 1; i < len(got.Entries); i++ {
		if !got.Entries[i-1].ID.Less(got.Entries[i].ID) {
			t.Fatalf("ids do not increase: %v", got.Entries)
		}
	}
}

func mustID(t *testing.T, s string) notice.ID {
	t.Helper()
	id, err := notice.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func read1(t *testing.T, s *Store, c routing.Cursor) routing.Batch {
	t.Helper()
	b, err := s.Read(testCtx(t), []routing.Cursor{c})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return b[0]
}

// TestGapDetection trims exactly (XTRIM without ~) to know what is
// retained, then deletes, empties, removes and expires the stream.
func TestGapDetection(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	raw := rawClient(t, srv)
	ctx := testCtx(t)
	u := user("gap")
	key := s.key(u)
	msgs := make([]routing.Message, 10)
	for i := range msgs {
		msgs[i] = routing.Message{User: u, Data: fmt.Sprint(i)}
	}
	ids, err := s.Append(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}

	type check struct {
		name        string
		after       notice.ID
		wantGap     bool
		wantEntries int
	}
	run := func(stage string, checks []check) {
		t.Helper()
		for _, c := range checks {
			b := read1(t, s, routing.Cursor{User: u, After: c.after, Count: 100, CheckGap: true})
			if b.Gap != c.wantGap || len(b.Entries) != c.wantEntries {
				t.Errorf("%s, %s: gap %v with %d entries; want gap %v with %d",
					stage, c.name, b.Gap, len(b.Entries), c.wantGap, c.wantEntries)
			}
		}
	}

	run("whole stream", []check{
		{"from zero", notice.Zero, false, 10},
		{"from the first", ids[0], false, 9},
		// Nothing was trimmed, yet the cursor is older than the stream:
		// it comes from an earlier stream under this key, one that expired.
		{"from before the first", notice1, true, 10},
	})

	raw.XTrimMaxLen(ctx, key, 3) // keeps ids[7:]
	run("trimmed to 3", []check{
		{"from zero never", notice.Zero, false, 3},
		{"from the oldest appended", ids[0], true, 3},
		// Redis cannot tell that only the cursor's own entry went: the
		// one spurious gap the contract allows.
		{"from the last trimmed", ids[6], true, 3},
		{"from the first retained", ids[7], false, 2},
		{"from the newest", ids[9], false, 0},
	})
	if b := read1(t, s, routing.Cursor{User: u, After: ids[0], Count: 100}); b.Gap {
		t.Errorf("gap reported without CheckGap")
	}

	raw.XDel(ctx, key, ids[8].String())
	run("middle deleted", []check{
		{"from before the deleted", ids[7], true, 1},
		{"from the deleted", ids[8], false, 1},
		{"from after it", ids[9], false, 0},
	})

	raw.XTrimMaxLen(ctx, key, 0)
	run("emptied", []check{
		{"from the newest", ids[9], false, 0},
		{"from before it", ids[7], true, 0},
		{"from zero", notice.Zero, false, 0},
	})

	raw.Del(ctx, key)
	run("deleted", []check{
		{"from the newest", ids[9], true, 0},
		{"from zero", notice.Zero, false, 0},
	})

	again, err := s.Append(ctx, msgs[:2])
	if err != nil {
		t.Fatal(err)
	}
	run("begun again", []check{
		{"from the old newest", ids[9], true, 2},
		{"from the new first", again[0], false, 1},
	})

	raw.PExpire(ctx, key, time.Millisecond)
	waitFor(t, "key to expire", func() bool { return raw.Exists(ctx, key).Val() == 0 })
	run("expired", []check{
		{"from the newest", again[1], true, 0},
	})

	run("never existed", []check{
		{"from an id", ids[3], true, 0},
	})
}

func TestReadManyCursorsAndCount(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL(), MaxLen: 5})
	a, b := user("many-a"), user("many-b")
	var msgs []routing.Message
	for i := range 300 {
		msgs = append(msgs, routing.Message{User: a, Data: fmt.Sprint(i)}, routing.Message{User: b, Data: fmt.Sprint(i)})
	}
	ids, err := s.Append(testCtx(t), msgs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(testCtx(t), []routing.Cursor{
		{User: a, After: ids[0], Count: 2, CheckGap: true},
		{User: b, After: ids[len(ids)-1], Count: 2, CheckGap: true},
		{User: a, Count: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Gap || len(got[0].Entries) != 2 {
		t.Errorf("a from its first id, count 2: %+v", got[0])
	}
	if got[1].Gap || len(got[1].Entries) != 0 {
		t.Errorf("b from its newest: %+v", got[1])
	}
	if n := len(got[2].Entries); n < 5 || n >= 300 || got[2].Entries[n-1].ID != ids[len(ids)-2] {
		t.Errorf("a from zero, no count: %d entries", n)
	}
}
