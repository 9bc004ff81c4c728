package redisstore

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/routing/storetest"
)

func xadd(t *testing.T, raw *redis.Client, s *Store, u string) notice.ID {
	t.Helper()
	id, err := raw.XAdd(testCtx(t), &redis.XAddArgs{Stream: s.key(u), Values: []any{"data", "raw"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return mustID(t, id)
}

// Pub/Sub messages arrive in order on the one connection, so once the
// marker's notification is in, every earlier one is too: absence can be
// checked without waiting for time to pass.
func TestFollowUnfollow(t *testing.T) {
	t.Parallel()
	// The operator's own flags (E, g) publish more events, such as
	// "expire" on every append: they must not become notifications.
	srv := redistest.Start(t, "--notify-keyspace-events", "KEA")
	s := newStore(t, Options{URL: srv.URL()})
	rec := storetest.NewRecorder()
	s.SetNotifier(rec)
	raw := rawClient(t, srv)
	ctx := testCtx(t)
	followed, other, marker := user("fol"), user("other"), user("marker")

	newest, err := s.Follow(ctx, followed)
	if err != nil || !newest.IsZero() {
		t.Fatalf("Follow of an empty stream: %v, %v; want 0-0", newest, err)
	}
	if _, err := s.Follow(ctx, marker); err != nil {
		t.Fatal(err)
	}
	xadd(t, raw, s, other)
	xadd(t, raw, s, followed)
	rec.WaitChanged(t, followed, 1)

	// Appends through the store and what else happens to the key.
	if _, err := s.Append(ctx, []routing.Message{{User: followed, Data: "x"}}); err != nil {
		t.Fatal(err)
	}
	rec.WaitChanged(t, followed, 2)
	raw.XTrimMaxLen(ctx, s.key(followed), 1)
	raw.PExpire(ctx, s.key(followed), time.Hour)
	raw.Persist(ctx, s.key(followed))
	xadd(t, raw, s, marker)
	rec.WaitChanged(t, marker, 1)
	if n := rec.Count(followed); n != 2 {
		t.Errorf("followed user: %d notifications for 2 appends", n)
	}
	if n := rec.Count(other); n != 0 {
		t.Errorf("user not followed: %d notifications", n)
	}

	if err := s.Unfollow(ctx, followed); err != nil {
		t.Fatal(err)
	}
	xadd(t, raw, s, followed)
	xadd(t, raw, s, marker)
	rec.WaitChanged(t, marker, 2)
	if n := rec.Count(followed); n != 2 {
		t.Errorf("after Unfollow: %d more notifications", n-2)
	}

	// Following again works, and returns the newest id.
	want := xadd(t, raw, s, followed)
	if got, err := s.Follow(ctx, followed); err != nil || got != want {
		t.Fatalf("Follow again: %v, %v; want %v", got, err, want)
	}
	xadd(t, raw, s, followed)
	rec.WaitChanged(t, followed, 3)
}

// Many goroutines follow and unfollow at once; every user still followed
// at the end hears of its entries, no other does, and nothing is left
// pending.
func TestFollowConcurrently(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	rec := storetest.NewRecorder()
	s.SetNotifier(rec)
	ctx := testCtx(t)
	const n = 200
	users := make([]string, n)
	for i := range users {
		users[i] = user(fmt.Sprint("conc", i))
	}
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			if _, err := s.Follow(ctx, u); err != nil {
				t.Error(err)
				return
			}
			if i%2 == 1 { // odd users leave, a third of them come back
				if err := s.Unfollow(ctx, u); err != nil {
					t.Error(err)
				}
				if i%3 == 0 {
					if _, err := s.Follow(ctx, u); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	isFollowed := func(i int) bool { return i%2 == 0 || i%3 == 0 }

	raw := rawClient(t, srv)
	pipe := raw.Pipeline()
	for _, u := range users {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.key(u), Values: []any{"data", "x"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	marker := user("marker")
	if _, err := s.Follow(ctx, marker); err != nil {
		t.Fatal(err)
	}
	xadd(t, raw, s, marker)
	rec.WaitChanged(t, marker, 1)
	for i, u := range users {
		if got, want := rec.Count(u) > 0, isFollowed(i); got != want {
			t.Errorf("user %d: notified %v, want %v", i, got, want)
		}
	}
	// Unsubscribe confirmations may still be on their way.
	waitFor(t, "no pending subscriptions", func() bool {
		return s.only().pendingCount() == 0
	})
}
