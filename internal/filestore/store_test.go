package filestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/routing/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, o storetest.Options) routing.Store {
		return open(t, Options{Path: filepath.Join(t.TempDir(), "noticed.db"), MaxLen: int(o.MaxLen), TTL: o.TTL})
	})
}

func TestPresenceConformance(t *testing.T) {
	storetest.RunPresence(t, func(t *testing.T) presence.Backend {
		return presence.NewLocal(open(t, Options{Path: filepath.Join(t.TempDir(), "noticed.db")}), "")
	}, false)
}

func open(t *testing.T, o Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendOne(t *testing.T, s *Store, user, data string) notice.ID {
	t.Helper()
	ids, err := s.Append(context.Background(), []routing.Message{{User: user, Event: "e", Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	return ids[0]
}

func readAll(t *testing.T, s *Store, user string, after notice.ID) routing.Batch {
	t.Helper()
	b, err := s.Read(context.Background(), []routing.Cursor{{User: user, After: after, CheckGap: true}})
	if err != nil {
		t.Fatal(err)
	}
	return b[0]
}

// fakeClock is a clock a test sets.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func TestHistorySurvivesReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "noticed.db")
	s := open(t, Options{Path: path, MaxLen: 100, TTL: time.Hour})
	var ids []notice.ID
	for i := range 5 {
		ids = append(ids, appendOne(t, s, "alice", fmt.Sprint(i)))
	}
	appendOne(t, s, "bob", "for bob")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, Options{Path: path, MaxLen: 100, TTL: time.Hour})
	b := readAll(t, s, "alice", ids[1])
	if b.Gap || len(b.Entries) != 3 || b.Entries[0].ID != ids[2] || b.Entries[2].Data != "4" || b.Entries[0].Event != "e" {
		t.Fatalf("after reopening, alice after %v: %+v", ids[1], b)
	}
	newest, err := s.Follow(context.Background(), "alice")
	if err != nil || newest != ids[4] {
		t.Fatalf("Follow after reopening: %v, %v; want %v", newest, err, ids[4])
	}
}

func TestIDsIncreaseWhenTheClockGoesBack(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "noticed.db")
	clock := &fakeClock{now: time.UnixMilli(1_800_000_000_000)}
	s := open(t, Options{Path: path, MaxLen: 100, TTL: time.Hour, Now: clock.Now})
	before := appendOne(t, s, "alice", "before")
	s.Close()

	// The clock is set back an hour and a half between runs. alice's
	// stream goes on and carol's starts from nothing, yet every id is
	// above every id given before.
	clock.Set(clock.Now().Add(-90 * time.Minute))
	s = open(t, Options{Path: path, MaxLen: 100, TTL: time.Hour, Now: clock.Now})
	afterAlice := appendOne(t, s, "alice", "after")
	afterCarol := appendOne(t, s, "carol", "after")
	if !before.Less(afterAlice) || !afterAlice.Less(afterCarol) {
		t.Fatalf("ids across the clock going back: %v then %v, %v", before, afterAlice, afterCarol)
	}
	b := readAll(t, s, "alice", before)
	if b.Gap || len(b.Entries) != 1 || b.Entries[0].ID != afterAlice {
		t.Fatalf("alice after %v: %+v", before, b)
	}
}

func TestExpiredStreamIsRemovedAndStartsAgain(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.UnixMilli(1_800_000_000_000)}
	s := open(t, Options{Path: filepath.Join(t.TempDir(), "noticed.db"), MaxLen: 100, TTL: time.Minute, Now: clock.Now})
	old := appendOne(t, s, "alice", "old")
	clock.Set(clock.Now().Add(time.Minute))
	if b := readAll(t, s, "alice", old); !b.Gap || len(b.Entries) != 0 {
		t.Fatalf("expired stream: %+v, want a gap and nothing", b)
	}
	s.sweep()
	if b := readAll(t, s, "alice", notice.Zero); b.Gap || len(b.Entries) != 0 {
		t.Fatalf("swept stream from zero: %+v", b)
	}
	fresh := appendOne(t, s, "alice", "fresh")
	if b := readAll(t, s, "alice", old); !b.Gap || len(b.Entries) != 1 || b.Entries[0].ID != fresh {
		t.Fatalf("stream begun again: %+v", b)
	}
}

func TestSecondOpenOfTheFileIsRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "noticed.db")
	open(t, Options{Path: path, MaxLen: 100})
	_, err := Open(Options{Path: path, MaxLen: 100, LockWait: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	t.Parallel()
	s := open(t, Options{Path: filepath.Join(t.TempDir(), "noticed.db"), MaxLen: 100})
	s.Close()
	ctx := context.Background()
	if _, err := s.Append(ctx, []routing.Message{{User: "alice"}}); !errors.Is(err, routing.ErrUnavailable) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := s.Read(ctx, []routing.Cursor{{User: "alice"}}); !errors.Is(err, routing.ErrUnavailable) {
		t.Errorf("Read after Close: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, routing.ErrUnavailable) {
		t.Errorf("Ping after Close: %v", err)
	}
}

func TestOtherFilesAreRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open(Options{Path: filepath.Join(dir, "missing", "noticed.db")}); err == nil {
		t.Error("a file in a missing directory: no error")
	}
	path := filepath.Join(dir, "noticed.db")
	s := open(t, Options{Path: path})
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte{99})
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(Options{Path: path}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a file of another format: %v, want ErrCorrupt", err)
	}
}

func TestConcurrentPublishersShareCommits(t *testing.T) {
	t.Parallel()
	s := open(t, Options{Path: filepath.Join(t.TempDir(), "noticed.db"), MaxLen: 10000})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 20 {
				appendOne(t, s, fmt.Sprintf("u%d", w%4), fmt.Sprint(i))
			}
		})
	}
	wg.Wait()
	for u := range 4 {
		b := readAll(t, s, fmt.Sprintf("u%d", u), notice.Zero)
		if len(b.Entries) != 80 {
			t.Fatalf("u%d: %d entries, want 80", u, len(b.Entries))
		}
	}
}
