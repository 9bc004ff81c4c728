package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/inbox"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// inboxCases are the history and read-state behaviours every backend
// shares; Run runs them with the rest.
var inboxCases = []struct {
	name string
	fn   func(*testing.T, NewStore)
}{
	{"ReadBack", testReadBack},
	{"AppendIfNewest", testAppendIfNewest},
	{"HistoryPages", testHistoryPages},
	{"ReadMarks", testReadMarks},
	{"ReadStateOnlyMovesForward", testReadStateForward},
	{"UnknownIDsRefused", testUnknownIDs},
	{"UnreadWithTrimming", testUnreadWithTrimming},
	{"ConcurrentMarksKeepBoth", testConcurrentMarks},
	{"StateAtAnID", testStateAt},
}

func testStateAt(t *testing.T, newStore NewStore) {
	s := backlog(t, newStore(t, Options{MaxLen: 1000, TTL: time.Hour}))
	u := User(t)
	ids := publish(t, s, u, 3)
	mark(t, s, u, &ids[0])
	markID := read1(t, s, routing.Cursor{User: u, After: ids[2], Count: 1}).Entries[0].ID
	ids = append(ids, publish(t, s, u, 2)...)
	tests := []struct {
		name string
		at   notice.ID
		want inbox.State
	}{
		{"before anything", notice.Zero, inbox.State{}},
		{"at the second", ids[1], inbox.State{Unread: 2}},
		{"at the mark", markID, inbox.State{UpTo: ids[0], Unread: 2}},
		{"at the newest", ids[4], inbox.State{UpTo: ids[0], Unread: 4}},
		{"past the newest", notice.Last, inbox.State{UpTo: ids[0], Unread: 4}},
	}
	for _, tt := range tests {
		got, err := inbox.At(ctx(t), s, u, tt.at)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		sameState(t, tt.name, got, tt.want)
	}
}

func backlog(t *testing.T, s routing.Store) inbox.Store {
	t.Helper()
	b, ok := s.(inbox.Store)
	if !ok {
		t.Fatalf("%T lacks routing.Backlog", s)
	}
	return b
}

func entryIDs(es []notice.Entry) []notice.ID {
	out := make([]notice.ID, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func reversed(ids []notice.ID) []notice.ID {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

func testReadBack(t *testing.T, newStore NewStore) {
	s := backlog(t, newStore(t, Options{MaxLen: 1000, TTL: time.Hour}))
	u := User(t)
	ids := appendN(t, s, u, 10)
	tests := []struct {
		name   string
		before notice.ID
		count  int
		want   []notice.ID
	}{
		{"newest three", notice.Last, 3, reversed(ids[7:])},
		{"below the sixth", ids[5], 0, reversed(ids[:5])},
		{"below the sixth, two", ids[5], 2, reversed(ids[3:5])},
		{"below the first", ids[0], 0, nil},
		{"below zero", notice.Zero, 0, nil},
	}
	for _, tt := range tests {
		got, err := s.ReadBack(ctx(t), u, tt.before, tt.count)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !slices.Equal(entryIDs(got), tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, entryIDs(got), tt.want)
		}
	}
	if got, err := s.ReadBack(ctx(t), User(t), notice.Last, 5); err != nil || len(got) != 0 {
		t.Errorf("a user without a stream: %v, %v", got, err)
	}
}

func testAppendIfNewest(t *testing.T, newStore NewStore) {
	s := backlog(t, newStore(t, Options{MaxLen: 1000, TTL: time.Hour}))
	u := User(t)
	first, err := s.AppendIfNewest(ctx(t), routing.Message{User: u, Event: "x", Data: "a"}, notice.Zero)
	if err != nil {
		t.Fatalf("on an empty stream: %v", err)
	}
	ids := appendN(t, s, u, 2)
	if _, err := s.AppendIfNewest(ctx(t), routing.Message{User: u, Data: "stale"}, first); !errors.Is(err, routing.ErrNotNewest) {
		t.Fatalf("with a stale newest: %v, want ErrNotNewest", err)
	}
	id, err := s.AppendIfNewest(ctx(t), routing.Message{User: u, Data: "fresh"}, ids[1])
	if err != nil {
		t.Fatalf("with the newest: %v", err)
	}
	all := read1(t, s, routing.Cursor{User: u, Count: 100}).Entries
	want := []notice.Entry{{ID: first, Event: "x", Data: "a"}, {ID: ids[0], Data: "0"}, {ID: ids[1], Data: "1"}, {ID: id, Data: "fresh"}}
	if !slices.Equal(all, want) {
		t.Errorf("stream holds %v, want %v", all, want)
	}
}

// publish appends one notification per data and returns their ids.
func publish(t *testing.T, s routing.Store, u string, n int) []notice.ID {
	t.Helper()
	return appendN(t, s, u, n)
}

func mark(t *testing.T, s inbox.Store, u string, upTo *notice.ID, ids ...notice.ID) inbox.State {
	t.Helper()
	st, err := inbox.Mark(ctx(t), s, u, upTo, ids)
	if err != nil {
		t.Fatalf("Mark(upTo %v, ids %v): %v", upTo, ids, err)
	}
	return st
}

func testHistoryPages(t *testing.T, newStore NewStore) {
	s := backlog(t, newStore(t, Options{MaxLen: 1000, TTL: time.Hour}))
	u := User(t)
	ids := publish(t, s, u, 4)
	mark(t, s, u, nil, ids[1]) // a mark among the notifications is not one of them
	ids = append(ids, publish(t, s, u, 3)...)
	var pages [][]notice.ID
	before := notice.Last
	for range 10 {
		p, err := inbox.History(ctx(t), s, u, before, 3)
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		pages = append(pages, entryIDs(p.Entries))
		if p.Read.Unread != 6 {
			t.Errorf("page %d: unread %d, want 6", len(pages), p.Read.Unread)
		}
		if p.Next.IsZero() {
			break
		}
		before = p.Next
	}
	want := [][]notice.ID{reversed(ids[4:7]), reversed(ids[1:4]), {ids[0]}}
	if !slices.EqualFunc(pages, want, slices.Equal) {
		t.Errorf("pages %v, want %v", pages, want)
	}
	p, err := inbox.History(ctx(t), s, User(t), notice.Last, 50)
	if err != nil || len(p.Entries) != 0 || !p.Next.IsZero() || p.Read.Unread != 0 {
		t.Errorf("a user without a stream: %+v, %v", p, err)
	}
}

func testReadMarks(t *testing.T, newStore NewStore) {
	s := backlog(t, newStore(t, Options{MaxLen: 1000, TTL: time.Hour}))
	u := User(t)
	ids := publish(t, s, u, 6)
	if st := current(t, s, u); st.Unread != 6 || !st.UpTo.IsZero() || len(st.IDs) != 0 {
		t.Fatalf("before any mark: %+v", st)
	}
	got := mark(t, s, u, nil, ids[4], ids[1])
	want := inbox.State{UpTo: notice.Zero, IDs: []notice.ID{ids[1], ids[4]}, Unread: 4}
	sameState(t, "single ids", got, want)
	sameState(t, "single ids, read again", current(t, s, u), want)

	got = mark(t, s, u, &ids[2])
	want = inbox.State{UpTo: ids[2], IDs: []notice.ID{ids[4]}, Unread: 2}
	sameState(t, "up to the third", got, want)

	more := publish(t, s, u, 2)
	want.Unread = 4
	sameState(t, "two more events", current(t, s, u), want)

	got = mark(t, s, u, &more[1])
	want = inbox.State{UpTo: more[1], IDs: []notice.ID{}, Unread: 0}
	sameState(t, "all read", got, want)

	// Each change is an entry of the stream, event "read", data the state.
	var marks []inbox.State
	for _, e := range read1(t, s, routing.Cursor{User: u, Count: 100}).Entries {
		if e.Event == inbox.EventRead {
			var st inbox.State
			if err := st.UnmarshalJSON([]byte(e.Data)); err != nil {
				t.Fatalf("mark %s: %v", e.Data, err)
			}
			marks = append(marks, st)
		}
	}
	if len(marks) != 3 {
		t.Fatalf("%d marks in the stream, want 3", len(marks))
	}
	sameState(t, "the last mark in the stream", marks[2], want)
}

func testReadStateForward(t *testing.T, newStore NewStore) {
	s := backlog(t, newStore(t, Options{MaxLen: 1000, TTL: time.Hour}))
	u := User(t)
	ids := publish(t, s, u, 5)
	want := mark(t, s, u, &ids[3])
	n := len(read1(t, s, routing.Cursor{User: u, Count: 100}).Entries)
	sameState(t, "up to an older id", mark(t, s, u, &ids[1]), want)
	sameState(t, "an id already read", mark(t, s, u, nil, ids[2]), want)
	if after := len(read1(t, s, routing.Cursor{User: u, Count: 100}).Entries); after != n {
		t.Errorf("marks that change nothing appended %d entries", after-n)
	}
	want = inbox.State{UpTo: ids[3], IDs: []notice.ID{ids[4]}, Unread: 0}
	sameState(t, "the last one singly", mark(t, s, u, &ids[0], ids[4]), want)
}

func testUnknownIDs(t *testing.T, newStore NewStore) {
	s := backlog(t, newStore(t, Options{MaxLen: 1000, TTL: time.Hour}))
	u := User(t)
	ids := publish(t, s, u, 3)
	m := mark(t, s, u, nil, ids[0])
	_ = m
	markID := read1(t, s, routing.Cursor{User: u, After: ids[2], Count: 1}).Entries[0].ID
	future := notice.ID{Ms: markID.Ms + 1000}
	between := notice.ID{Ms: ids[1].Ms, Seq: ids[1].Seq + 1}
	if between == ids[2] {
		between.Seq++
	}
	tests := []struct {
		name string
		upTo *notice.ID
		ids  []notice.ID
	}{
		{"upTo past the newest", &future, nil},
		{"an id past the newest", nil, []notice.ID{future}},
		{"an id between two entries", nil, []notice.ID{between}},
		{"a read mark as a single id", nil, []notice.ID{markID}},
		{"zero", nil, []notice.ID{notice.Zero}},
	}
	for _, tt := range tests {
		if _, err := inbox.Mark(ctx(t), s, u, tt.upTo, tt.ids); !errors.Is(err, inbox.ErrUnknownID) {
			t.Errorf("%s: %v, want ErrUnknownID", tt.name, err)
		}
	}
	if _, err := inbox.Mark(ctx(t), s, User(t), &ids[0], nil); !errors.Is(err, inbox.ErrUnknownID) {
		t.Errorf("another user's id: %v, want ErrUnknownID", err)
	}
	// upTo may name a read mark: a client marks up to the last id it saw.
	sameState(t, "up to the mark", mark(t, s, u, &markID), inbox.State{UpTo: markID, IDs: []notice.ID{}, Unread: 0})
}

// testUnreadWithTrimming holds the unread count to a count made from
// scratch over the retained entries, as trimming removes what marks
// counted.
func testUnreadWithTrimming(t *testing.T, newStore NewStore) {
	// MAXLEN ~ on Redis trims whole nodes of 100 entries: go well past.
	s := backlog(t, newStore(t, Options{MaxLen: 50, TTL: time.Hour}))
	u := User(t)
	ids := publish(t, s, u, 40)
	mark(t, s, u, nil, ids[30], ids[35]) // single ids only: everything before counts
	checkUnread(t, s, u, "after single marks")
	ids = append(ids, publish(t, s, u, 300)...)
	checkUnread(t, s, u, "after trimming the marked")
	all := read1(t, s, routing.Cursor{User: u, Count: 1000}).Entries
	mid := all[len(all)/2].ID
	mark(t, s, u, &mid, all[len(all)-2].ID)
	checkUnread(t, s, u, "after up to the middle")
	publish(t, s, u, 300)
	checkUnread(t, s, u, "after trimming past the mark")
	if st := current(t, s, u); st.Unread == 0 {
		t.Errorf("nothing unread after 300 new events: %+v", st)
	}
}

func checkUnread(t *testing.T, s inbox.Store, u, when string) {
	t.Helper()
	all := read1(t, s, routing.Cursor{User: u, Count: 10000}).Entries
	var last inbox.State
	for _, e := range all {
		if e.Event == inbox.EventRead {
			if err := last.UnmarshalJSON([]byte(e.Data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := 0
	for _, e := range all {
		if e.Event != inbox.EventRead && !last.Read(e.ID) {
			want++
		}
	}
	if got := current(t, s, u); got.Unread != want {
		t.Errorf("%s: unread %d, want %d over %d retained", when, got.Unread, want, len(all))
	}
}

func testConcurrentMarks(t *testing.T, newStore NewStore) {
	s := backlog(t, newStore(t, Options{MaxLen: 1000, TTL: time.Hour}))
	u := User(t)
	ids := publish(t, s, u, 20)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if _, err := inbox.Mark(ctx(t), s, u, nil, []notice.ID{ids[2*i]}); err != nil {
				t.Errorf("Mark: %v", err)
			}
		})
	}
	wg.Wait()
	st := current(t, s, u)
	if len(st.IDs) != 10 || st.Unread != 10 {
		t.Errorf("after ten devices marked one id each: %+v", st)
	}
}

func current(t *testing.T, s inbox.Store, u string) inbox.State {
	t.Helper()
	st, err := inbox.Current(ctx(t), s, u)
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	return st
}

func sameState(t *testing.T, what string, got, want inbox.State) {
	t.Helper()
	if got.UpTo != want.UpTo || !slices.Equal(got.IDs, want.IDs) || got.Unread != want.Unread {
		t.Errorf("%s: state %+v, want %+v", what, got, want)
	}
}
