package presence_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/faultproxy"
	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/redisstore"
	"github.com/noticed/noticed/internal/redistest"
)

// TestLapsedInstanceComesBack: instance A loses Redis for longer than its
// lease. B takes A's share away (A's user goes offline); when Redis
// answers A again, A finds its lease lapsed, takes a new name and writes
// its user again (online again). Counts are right all along the way.
func TestLapsedInstanceComesBack(t *testing.T) {
	srv := redistest.Start(t)
	proxy := faultproxy.Start(t, srv.Addr())
	log := slog.New(slog.DiscardHandler)
	open := func(addr string) *redisstore.Store {
		s, err := redisstore.New(context.Background(), redisstore.Options{URL: "redis://" + addr + "/0", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	const lease = 600 * time.Millisecond
	key := "presence-lapse"
	a := presence.NewTracker(open(proxy.Addr()).Presence(key), presence.Options{Instance: "A", Lease: lease, Logger: log})
	direct := open(srv.Addr()).Presence(key)
	b := presence.NewTracker(direct, presence.Options{Instance: "B", Lease: lease, Logger: log})
	go a.Run()
	go b.Run()
	defer b.Close(context.Background())
	defer a.Close(context.Background())

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	states := func() []string {
		entries, _ := rdb.XRange(context.Background(), key, "-", "+").Result()
		var out []string
		for _, e := range entries {
			out = append(out, e.Values["state"].(string))
		}
		return out
	}
	streams := func() int {
		infos, err := direct.Counts(context.Background(), []string{"u1"})
		if err != nil {
			return -1
		}
		return infos[0].Streams
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (states %v, streams %d)", what, states(), streams())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	a.Counted("u1", 1)
	waitFor("u1 online through A", func() bool { return streams() == 1 && len(states()) == 1 })
	proxy.Drop()
	waitFor("B to take A's share away", func() bool { return streams() == 0 && len(states()) == 2 })
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	waitFor("A back, under a new name", func() bool { return streams() == 1 && len(states()) == 3 })
	if got := states(); got[0] != "online" || got[1] != "offline" || got[2] != "online" {
		t.Errorf("transitions %v, want online, offline, online", got)
	}
	if a.Instance() == "A" {
		t.Errorf("A kept its lapsed name")
	}
	a.Counted("u1", 0)
	waitFor("u1 offline", func() bool { return streams() == 0 && len(states()) == 4 })
}

// TestLateWriteUnderALapsedName: a reaper takes a lapsed instance's shares
// away and forgets it; the lapsed instance, not yet aware, writes one more
// user under its old name. When it finds its lease gone it takes its old
// name's shares away itself before writing its users again, so no user is
// counted twice (seen under load in e2e.TestPresence: a count of 2 for one
// stream).
func TestLateWriteUnderALapsedName(t *testing.T) {
	srv := redistest.Start(t)
	log := slog.New(slog.DiscardHandler)
	s, err := redisstore.New(context.Background(), redisstore.Options{URL: srv.URL(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	key := "presence-late"
	backend := s.Presence(key)
	const lease = 3 * time.Second // renewed each second: room for the steps below
	a := presence.NewTracker(backend, presence.Options{Instance: "A", Lease: lease, Logger: log})
	go a.Run()
	defer a.Close(context.Background())
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	count := func(u string) int {
		infos, err := backend.Counts(ctx, []string{u})
		if err != nil {
			return -1
		}
		return infos[0].Streams
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (u1 %d, u2 %d)", what, count("u1"), count("u2"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	a.Counted("u1", 1)
	waitFor("u1 online through A", func() bool { return count("u1") == 1 })
	// A's lease lapses, and a reaper does what reap does.
	if err := rdb.Del(ctx, "noticed:lease:A").Err(); err != nil {
		t.Fatal(err)
	}
	users, err := backend.Held(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]presence.Count, len(users))
	for i, u := range users {
		zeros[i] = presence.Count{User: u}
	}
	if _, err := backend.Set(ctx, "A", zeros, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := backend.Forget(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	// A, not yet aware, writes a user under its old name.
	a.Counted("u2", 1)
	waitFor("A back under a new name, both users counted once", func() bool {
		return a.Instance() != "A" && count("u1") == 1 && count("u2") == 1
	})
	// And it stays so over a few renewals.
	deadline := time.Now().Add(2 * lease / 3)
	for time.Now().Before(deadline) {
		if c1, c2 := count("u1"), count("u2"); c1 != 1 || c2 != 1 {
			t.Fatalf("counts u1 %d, u2 %d; want 1 each", c1, c2)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
