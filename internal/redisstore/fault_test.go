package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/routing/storetest"
)

// Redis is killed and started again on the same data: meanwhile every call
// fails with ErrUnavailable; after, the notifier is told to resync, the
// notification flags (forgotten by the restarted server) are back, and
// live notifications flow again.
func TestKillAndRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--appendonly", "yes")
	s := newStore(t, Options{URL: srv.URL()})
	rec := storetest.NewRecorder()
	s.SetNotifier(rec)
	ctx := testCtx(t)
	u := user("fault")
	if _, err := s.Follow(ctx, u); err != nil {
		t.Fatal(err)
	}
	before, err := s.Append(ctx, []routing.Message{{User: u, Data: "before"}})
	if err != nil {
		t.Fatal(err)
	}
	rec.WaitChanged(t, u, 1)

	srv.Kill()
	shortCtx := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		t.Cleanup(cancel)
		return c
	}
	if err := s.Ping(shortCtx()); !errors.Is(err, routing.ErrUnavailable) {
		t.Errorf("Ping while down: %v; want ErrUnavailable", err)
	}
	if _, err := s.Append(shortCtx(), []routing.Message{{User: u, Data: "lost"}}); !errors.Is(err, routing.ErrUnavailable) {
		t.Errorf("Append while down: %v; want ErrUnavailable", err)
	}
	if _, err := s.Read(shortCtx(), []routing.Cursor{{User: u, After: before[0], CheckGap: true}}); !errors.Is(err, routing.ErrUnavailable) {
		t.Errorf("Read while down: %v; want ErrUnavailable", err)
	}
	v := user("fault-v")
	if _, err := s.Follow(shortCtx(), v); !errors.Is(err, routing.ErrUnavailable) {
		t.Errorf("Follow while down: %v; want ErrUnavailable", err)
	}
	if rec.Resyncs() != 0 {
		t.Errorf("Resync before Redis came back")
	}

	srv.Restart()
	waitFor(t, "Resync", func() bool { return rec.Resyncs() > 0 })
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	flags := rawClient(t, srv).ConfigGet(ctx, notifyParam).Val()[notifyParam]
	if !strings.Contains(flags, "K") || !strings.Contains(flags, "t") {
		t.Errorf("flags after restart %q, want K and t", flags)
	}
	got := read1(t, s, routing.Cursor{User: u, Count: 10})
	if len(got.Entries) != 1 || got.Entries[0].ID != before[0] {
		t.Errorf("after restart read %v, want the entry appended before", got.Entries)
	}

	// Live again: the old follow and a new one, the failed Follow of v
	// having left nothing behind.
	if _, err := s.Append(ctx, []routing.Message{{User: u, Data: "after"}, {User: v, Data: "not followed"}}); err != nil {
		t.Fatal(err)
	}
	rec.WaitChanged(t, u, 2)
	w := user("fault-w")
	if _, err := s.Follow(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []routing.Message{{User: w, Data: "x"}}); err != nil {
		t.Fatal(err)
	}
	rec.WaitChanged(t, w, 1)
	if n := rec.Count(v); n != 0 {
		t.Errorf("user whose Follow failed: %d notifications", n)
	}
}

// A frozen Redis keeps its sockets open: only the health check's
// unanswered PING shows that the Pub/Sub connection is dead.
func TestFrozenRedisIsNoticed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL(), healthEvery: 100 * time.Millisecond})
	rec := storetest.NewRecorder()
	s.SetNotifier(rec)
	ctx := testCtx(t)
	u := user("frozen")
	if _, err := s.Follow(ctx, u); err != nil {
		t.Fatal(err)
	}

	srv.Pause()
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := s.Ping(pctx); !errors.Is(err, routing.ErrUnavailable) {
		t.Errorf("Ping while frozen: %v; want ErrUnavailable", err)
	}
	waitFor(t, "the Pub/Sub connection to be given up", func() bool { return s.only().lossCount() > 0 })
	srv.Resume()

	waitFor(t, "Resync", func() bool { return rec.Resyncs() > 0 })
	if _, err := s.Append(ctx, []routing.Message{{User: u, Data: "x"}}); err != nil {
		t.Fatal(err)
	}
	rec.WaitChanged(t, u, 1)
}

// An idle connection is pinged, not replaced.
func TestIdleConnectionIsKept(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	// An unanswered PING is given as long as the silence before it: long
	// enough here that a loaded machine's scheduling is not taken for a
	// frozen server (the test once failed at 20 ms under -race).
	s := newStore(t, Options{URL: srv.URL(), healthEvery: 250 * time.Millisecond})
	rec := storetest.NewRecorder()
	s.SetNotifier(rec)
	u := user("idle")
	if _, err := s.Follow(testCtx(t), u); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, srv)
	waitFor(t, "five health pings", func() bool { return pingCalls(t, raw) >= 5 })
	if n := s.only().lossCount(); n != 0 || rec.Resyncs() != 0 {
		t.Errorf("idle connection replaced %d times, %d resyncs", n, rec.Resyncs())
	}
	xadd(t, raw, s, u)
	rec.WaitChanged(t, u, 1)
}

// pingCalls reads how many PINGs Redis has answered, from INFO commandstats.
func pingCalls(t *testing.T, raw *redis.Client) int {
	t.Helper()
	info := raw.Info(testCtx(t), "commandstats").Val()
	_, rest, ok := strings.Cut(info, "cmdstat_ping:calls=")
	if !ok {
		return 0
	}
	digits, _, _ := strings.Cut(rest, ",")
	n, _ := strconv.Atoi(digits)
	return n
}
