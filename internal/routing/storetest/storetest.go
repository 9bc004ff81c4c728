// Package storetest holds the behaviour every routing.Store must have, as
// one suite that the memory and Redis backends both run.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// Options are the retention settings a suite case asks its store for.
type Options struct {
	MaxLen int64
	TTL    time.Duration
}

// NewStore makes a fresh, empty store for one test; it closes it itself
// through t.Cleanup.
type NewStore func(t *testing.T, o Options) routing.Store

// Run runs the whole suite against the stores newStore makes. Each case
// uses its own user ids, so stores may share one server.
func Run(t *testing.T, newStore NewStore) {
	cases := []struct {
		name string
		fn   func(*testing.T, NewStore)
	}{
		{"AppendThenRead", testAppendThenRead},
		{"ReadAfterAndCount", testReadAfterAndCount},
		{"UsersAreSeparate", testUsersAreSeparate},
		{"TrimmingReportsGap", testTrimmingReportsGap},
		{"ExpiryReportsGap", testExpiryReportsGap},
		{"CursorPastTheNewest", testCursorPastTheNewest},
		{"FollowNotifiesOnlyFollowed", testFollowNotifiesOnlyFollowed},
		{"FollowReturnsNewest", testFollowReturnsNewest},
		{"ConcurrentAppendsKeepOrder", testConcurrentAppendsKeepOrder},
		{"MixedAppendKeepsOrder", testMixedAppendKeepsOrder},
		{"ChainedAppendsNamePredecessors", testChainedAppends},
		{"Ping", testPing},
	}
	cases = append(cases, inboxCases...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, newStore)
		})
	}
}

var userSeq struct {
	sync.Mutex
	n int
}

// User returns a user id no other test uses.
func User(t *testing.T) string {
	userSeq.Lock()
	defer userSeq.Unlock()
	userSeq.n++
	return fmt.Sprintf("st-%d-%d", time.Now().UnixNano(), userSeq.n)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func appendN(t *testing.T, s routing.Store, user string, n int) []notice.ID {
	t.Helper()
	msgs := make([]routing.Message, n)
	for i := range msgs {
		msgs[i] = routing.Message{User: user, Data: fmt.Sprint(i)}
	}
	ids, err := s.Append(ctx(t), msgs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(ids) != n {
		t.Fatalf("Append returned %d ids for %d messages", len(ids), n)
	}
	return ids
}

func read1(t *testing.T, s routing.Store, c routing.Cursor) routing.Batch {
	t.Helper()
	b, err := s.Read(ctx(t), []routing.Cursor{c})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(b) != 1 {
		t.Fatalf("Read returned %d batches for 1 cursor", len(b))
	}
	return b[0]
}

func testAppendThenRead(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{MaxLen: 1000, TTL: time.Hour})
	u := User(t)
	ids, err := s.Append(ctx(t), []routing.Message{
		{User: u, Event: "order.shipped", Data: `{"id":1}`},
		{User: u, Data: "line1\nline2"},
		{User: u, Event: "x", Data: ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(ids); i++ {
		if !ids[i-1].Less(ids[i]) {
			t.Fatalf("ids not increasing: %v", ids)
		}
	}
	got := read1(t, s, routing.Cursor{User: u, Count: 10}).Entries
	want := []notice.Entry{
		{ID: ids[0], Event: "order.shipped", Data: `{"id":1}`},
		{ID: ids[1], Data: "line1\nline2"},
		{ID: ids[2], Event: "x", Data: ""},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func testReadAfterAndCount(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{MaxLen: 1000, TTL: time.Hour})
	u := User(t)
	ids := appendN(t, s, u, 10)
	b := read1(t, s, routing.Cursor{User: u, After: ids[3], Count: 4})
	if len(b.Entries) != 4 || b.Entries[0].ID != ids[4] || b.Entries[3].ID != ids[7] {
		t.Fatalf("after %v count 4: got %v", ids[3], b.Entries)
	}
	if b = read1(t, s, routing.Cursor{User: u, After: ids[9], Count: 4}); len(b.Entries) != 0 {
		t.Fatalf("after the newest: got %v", b.Entries)
	}
	if b = read1(t, s, routing.Cursor{User: User(t), Count: 4, CheckGap: true}); len(b.Entries) != 0 || b.Gap {
		t.Fatalf("unknown user from zero: got %+v", b)
	}
}

func testUsersAreSeparate(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{MaxLen: 1000, TTL: time.Hour})
	a, b := User(t), User(t)
	ids, err := s.Append(ctx(t), []routing.Message{{User: a, Data: "for a"}, {User: b, Data: "for b"}, {User: a, Data: "a again"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(ctx(t), []routing.Cursor{{User: a, Count: 10}, {User: b, Count: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0].Entries) != 2 || got[0].Entries[0].Data != "for a" || got[0].Entries[1].ID != ids[2] {
		t.Errorf("user a: got %v", got[0].Entries)
	}
	if len(got[1].Entries) != 1 || got[1].Entries[0].Data != "for b" || got[1].Entries[0].ID != ids[1] {
		t.Errorf("user b: got %v", got[1].Entries)
	}
}

func testTrimmingReportsGap(t *testing.T, newStore NewStore) {
	// MAXLEN ~ on Redis trims whole nodes of 100 entries, so append well
	// past both the limit and one node.
	s := newStore(t, Options{MaxLen: 5, TTL: time.Hour})
	u := User(t)
	ids := appendN(t, s, u, 400)
	all := read1(t, s, routing.Cursor{User: u, Count: 1000}).Entries
	if len(all) < 5 || len(all) >= 400 {
		t.Fatalf("retained %d of 400 with max length 5", len(all))
	}
	if last := all[len(all)-1].ID; last != ids[399] {
		t.Fatalf("newest retained %v, want %v", last, ids[399])
	}
	first := all[0].ID
	tests := []struct {
		name    string
		after   notice.ID
		wantGap bool
	}{
		{"from zero never", notice.Zero, false},
		{"from the oldest appended", ids[0], true},
		{"from just before the first retained", ids[400-len(all)-1], true},
		{"from the first retained", first, false},
		{"from the newest", ids[399], false},
	}
	for _, tt := range tests {
		b := read1(t, s, routing.Cursor{User: u, After: tt.after, Count: 1000, CheckGap: true})
		if b.Gap != tt.wantGap {
			t.Errorf("%s: gap %v, want %v", tt.name, b.Gap, tt.wantGap)
		}
		if len(b.Entries) == 0 && tt.after != ids[399] {
			t.Errorf("%s: no entries", tt.name)
		}
	}
}

// A cursor past the newest entry a stream ever had reads nothing, without
// an error, and is reported as ahead (and so as a gap) when asked.
func testCursorPastTheNewest(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{MaxLen: 1000, TTL: time.Hour})
	u := User(t)
	ids := appendN(t, s, u, 3)
	newest := ids[2]
	tests := []struct {
		name      string
		user      string
		after     notice.ID
		wantAhead bool
	}{
		{"from the newest", u, newest, false},
		{"from an older one", u, ids[0], false},
		{"one past the newest", u, notice.ID{Ms: newest.Ms, Seq: newest.Seq + 1}, true},
		{"an hour past the newest", u, notice.ID{Ms: newest.Ms + 3600_000}, true},
		{"the largest id", u, notice.Last, true},
		{"a user without a stream", User(t), notice.ID{Ms: 5}, true},
		{"a user without a stream, from zero", User(t), notice.Zero, false},
	}
	for _, tt := range tests {
		for _, check := range []bool{false, true} {
			b := read1(t, s, routing.Cursor{User: tt.user, After: tt.after, Count: 10, CheckGap: check})
			if tt.after != ids[0] && len(b.Entries) != 0 {
				t.Errorf("%s: read %v", tt.name, b.Entries)
			}
			want := tt.wantAhead && check
			if b.Ahead != want || want && !b.Gap {
				t.Errorf("%s (gap check %v): ahead %v gap %v, want ahead %v", tt.name, check, b.Ahead, b.Gap, want)
			}
		}
	}
}

func testExpiryReportsGap(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{MaxLen: 1000, TTL: 300 * time.Millisecond})
	u := User(t)
	old := appendN(t, s, u, 3)
	waitFor(t, 10*time.Second, "stream to expire", func() bool {
		return len(read1(t, s, routing.Cursor{User: u, Count: 10}).Entries) == 0
	})
	if b := read1(t, s, routing.Cursor{User: u, After: old[1], Count: 10, CheckGap: true}); !b.Gap {
		t.Errorf("expired stream: no gap reported")
	}
	fresh := appendN(t, s, u, 2)
	b := read1(t, s, routing.Cursor{User: u, After: old[1], Count: 10, CheckGap: true})
	if !b.Gap {
		t.Errorf("stream expired and begun again: no gap reported")
	}
	if len(b.Entries) != 2 || b.Entries[0].ID != fresh[0] {
		t.Errorf("stream begun again: got %v, want ids %v", b.Entries, fresh)
	}
}

// Recorder is a Notifier that keeps what it is told, for store tests.
type Recorder struct {
	mu      sync.Mutex
	changed map[string]int
	resyncs int
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{changed: map[string]int{}} }

// Changed counts a notification for user.
func (r *Recorder) Changed(user string) {
	r.mu.Lock()
	r.changed[user]++
	r.mu.Unlock()
}

// Recheck counts as a notification for user.
func (r *Recorder) Recheck(user string) { r.Changed(user) }

// Resync counts a resync.
func (r *Recorder) Resync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
}

// Count returns how many notifications user had.
func (r *Recorder) Count(user string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed[user]
}

// Resyncs returns how many resyncs there were.
func (r *Recorder) Resyncs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs
}

// WaitChanged waits until user has had at least atLeast notifications.
func (r *Recorder) WaitChanged(t *testing.T, user string, atLeast int) {
	t.Helper()
	waitFor(t, 10*time.Second, "notification for "+user, func() bool { return r.Count(user) >= atLeast })
}

func testFollowNotifiesOnlyFollowed(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{MaxLen: 1000, TTL: time.Hour})
	rec := NewRecorder()
	s.SetNotifier(rec)
	followed, other, marker := User(t), User(t), User(t)
	for _, u := range []string{followed, marker} {
		if _, err := s.Follow(ctx(t), u); err != nil {
			t.Fatal(err)
		}
	}
	appendN(t, s, other, 1)
	appendN(t, s, followed, 1)
	appendN(t, s, marker, 1)
	rec.WaitChanged(t, followed, 1)
	rec.WaitChanged(t, marker, 1)
	if n := rec.Count(other); n != 0 {
		t.Errorf("user not followed: %d notifications", n)
	}

	if err := s.Unfollow(ctx(t), followed); err != nil {
		t.Fatal(err)
	}
	before := rec.Count(followed)
	appendN(t, s, followed, 1)
	marker2 := User(t)
	if _, err := s.Follow(ctx(t), marker2); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, marker2, 1)
	rec.WaitChanged(t, marker2, 1)
	if n := rec.Count(followed); n != before {
		t.Errorf("after Unfollow: %d more notifications", n-before)
	}
}

func testFollowReturnsNewest(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{MaxLen: 1000, TTL: time.Hour})
	s.SetNotifier(NewRecorder())
	u := User(t)
	got, err := s.Follow(ctx(t), u)
	if err != nil || !got.IsZero() {
		t.Fatalf("Follow of an empty stream: %v, %v; want 0-0", got, err)
	}
	appendN(t, s, u, 3)
	v := User(t)
	appendN(t, s, v, 2)
	idsV := appendN(t, s, v, 1)
	if got, err = s.Follow(ctx(t), v); err != nil || got != idsV[0] {
		t.Fatalf("Follow: %v, %v; want %v", got, err, idsV[0])
	}
}

func testConcurrentAppendsKeepOrder(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{MaxLen: 10000, TTL: time.Hour})
	u := User(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				appendN(t, s, u, 2)
			}
		})
	}
	wg.Wait()
	got := read1(t, s, routing.Cursor{User: u, Count: 1000}).Entries
	if len(got) != 400 {
		t.Fatalf("read %d entries, want 400", len(got))
	}
	for i := 1; i < len(got); i++ {
		if !got[i-1].ID.Less(got[i].ID) {
			t.Fatalf("entry %d: %v after %v", i, got[i].ID, got[i-1].ID)
		}
	}
}

// One Append of many users' messages interleaved (a batch publish; in a
// Cluster, users on every master): each id is its own message's, and each
// user's entries are in the Append's order.
func testMixedAppendKeepsOrder(t *testing.T, newStore NewStore) {
	MixedAppend(t, newStore(t, Options{MaxLen: 1000, TTL: time.Hour}))
}

// MixedAppend is the MixedAppendKeepsOrder case on a store made elsewhere
// (one with replicas to wait for, say).
func MixedAppend(t *testing.T, s routing.Store) {
	t.Helper()
	users := make([]string, 12)
	for i := range users {
		users[i] = User(t)
	}
	var msgs []routing.Message
	for i := range 120 {
		msgs = append(msgs, routing.Message{User: users[(i*7)%len(users)], Event: fmt.Sprint("e", i%3), Data: fmt.Sprint(i)})
	}
	ids, err := s.Append(ctx(t), msgs)
	if err != nil || len(ids) != len(msgs) {
		t.Fatalf("Append of %d messages: %d ids, %v", len(msgs), len(ids), err)
	}
	for _, u := range users {
		var want []notice.Entry
		for i, m := range msgs {
			if m.User == u {
				want = append(want, notice.Entry{ID: ids[i], Event: m.Event, Data: m.Data})
			}
		}
		got := read1(t, s, routing.Cursor{User: u, Count: 1000}).Entries
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s holds %v, want %v", u, got, want)
		}
	}
}

// testChainedAppends holds a ChainAppender to its promise: an entry's
// Prev, when known, is the entry just before it in its user's stream,
// whoever appends concurrently (zero for a stream's first entry), and it
// is known for appends to a stream nobody else is writing to.
func testChainedAppends(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{MaxLen: 1000, TTL: time.Hour})
	chain, ok := s.(routing.ChainAppender)
	if !ok {
		t.Skip("the store does not name predecessors")
	}
	u, fresh := User(t), User(t)
	before := appendN(t, s, u, 2)
	got, err := chain.AppendChained(ctx(t), []routing.Message{{User: u, Data: "a"}, {User: fresh, Data: "b"}, {User: u, Data: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("AppendChained answered %d entries for 3 messages", len(got))
	}
	want := []routing.Appended{{ID: got[0].ID, Prev: before[1], Chained: true}, {ID: got[2].ID, Prev: got[0].ID, Chained: true}}
	if have := []routing.Appended{got[0], got[2]}; fmt.Sprint(have) != fmt.Sprint(want) {
		t.Fatalf("AppendChained answered %v, want %v", have, want)
	}
	if got[1].Chained && got[1].Prev != notice.Zero {
		t.Fatalf("a new stream's first entry was answered with predecessor %v", got[1].Prev)
	}

	// Four writers at once: every predecessor known is the entry just
	// before in the stream's order.
	const writers, each = 4, 50
	var mu sync.Mutex
	prevOf := make(map[notice.ID]notice.ID)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				a, err := chain.AppendChained(ctx(t), []routing.Message{{User: u, Data: fmt.Sprint(w, ":", i)}})
				if err != nil || len(a) != 1 {
					t.Errorf("AppendChained: %v, %v", a, err)
					return
				}
				if a[0].Chained {
					mu.Lock()
					prevOf[a[0].ID] = a[0].Prev
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	entries := read1(t, s, routing.Cursor{User: u, After: got[2].ID, Count: 1000}).Entries
	if len(entries) != writers*each {
		t.Fatalf("the stream holds %d entries after the writers, want %d", len(entries), writers*each)
	}
	prev := got[2].ID
	for _, e := range entries {
		if p, ok := prevOf[e.ID]; ok && p != prev {
			t.Fatalf("entry %v was answered with predecessor %v, want %v", e.ID, p, prev)
		}
		prev = e.ID
	}
	if len(prevOf) == 0 {
		t.Fatalf("no predecessor known among %d appends", writers*each)
	}
}

func testPing(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{MaxLen: 1000, TTL: time.Hour})
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
