package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing/storetest"
)

func TestTakeBatch(t *testing.T) {
	t.Parallel()
	f := func(user string) *request { return &request{user: user, follow: true, mark: new(int)} }
	u := func(user string) *request { return &request{user: user} }
	gone := func(r *request) *request { r.state.Store(abandoned); return r }
	type setup struct {
		queue    []*request
		followed []*request // each user's latest Follow
		answered []*request // overtaken: answered at once, never sent
	}
	tests := []struct {
		name  string
		setup func() setup
		want  []string // each batch: follows, then "-" and unfollows
	}{
		{"empty", func() setup { return setup{} }, nil},
		{"one follow", func() setup {
			a := f("a")
			return setup{queue: []*request{a}, followed: []*request{a}}
		}, []string{"a"}},
		{"follows and unfollows together", func() setup {
			a, c := f("a"), f("c")
			return setup{queue: []*request{a, u("b"), c, u("d")}, followed: []*request{a, c}}
		}, []string{"a c - b d"}},
		{"a user's second request starts the next batch", func() setup {
			return setup{queue: []*request{u("a"), u("b"), u("a")}}
		}, []string{"- a b", "- a"}},
		{"a Follow given up is skipped, its UNSUBSCRIBE kept", func() setup {
			return setup{queue: []*request{gone(f("a")), u("a")}}
		}, []string{"- a"}},
		{"only the latest Follow of a user is sent", func() setup {
			a1, a2 := f("a"), f("a")
			return setup{queue: []*request{a1, a2}, followed: []*request{a2}, answered: []*request{a1}}
		}, []string{"a"}},
		{"an Unfollow the user was followed again after is not sent", func() setup {
			a1, a2 := f("a"), f("a")
			return setup{queue: []*request{a1, u("a"), a2}, followed: []*request{a2}, answered: []*request{a1}}
		}, []string{"a"}},
		{"at most maxBatch at once", func() setup {
			many := make([]*request, maxBatch+2)
			for i := range many {
				many[i] = f(fmt.Sprint("m", i))
			}
			return setup{queue: many, followed: many}
		}, []string{fmt.Sprint(maxBatch, " follows"), "m1024 m1025"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.setup()
			n := &node{s: &Store{}}
			s := n.s
			for _, r := range c.followed {
				s.followed.Store(r.user, r.mark)
			}
			queue := c.queue
			var got []string
			for {
				var follows, unfollows []*request
				follows, unfollows, queue = n.takeBatch(queue)
				if len(follows) == 0 && len(unfollows) == 0 {
					break
				}
				var names []string
				for _, r := range follows {
					names = append(names, r.user)
				}
				if len(unfollows) > 0 {
					names = append(names, "-")
				}
				for _, r := range unfollows {
					names = append(names, r.user)
				}
				line := strings.Join(names, " ")
				if len(follows) == maxBatch {
					line = fmt.Sprint(maxBatch, " follows")
				}
				got = append(got, line)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("batches %q, want %q", got, tt.want)
			}
			if len(queue) != 0 {
				t.Errorf("%d requests left queued", len(queue))
			}
			for _, r := range c.answered {
				if r.state.Load() != answered || !errors.Is(r.err, errSuperseded) {
					t.Errorf("overtaken Follow: state %d, err %v; want answered with errSuperseded", r.state.Load(), r.err)
				}
			}
		})
	}
}

// Thousands of streams opening together: every Follow returns its user's
// newest id, and every user hears of the next entry.
func TestManyConcurrentFollows(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	rec := storetest.NewRecorder()
	s.SetNotifier(rec)
	raw := rawClient(t, srv)
	ctx := testCtx(t)

	const n = 5000
	users := make([]string, n)
	for i := range users {
		users[i] = user(fmt.Sprint("many", i))
	}
	// Every other user has history: Follow must return its entry's id.
	want := make([]notice.ID, n)
	pipe := raw.Pipeline()
	adds := make([]*redis.StringCmd, n)
	for i := 0; i < n; i += 2 {
		adds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.key(users[i]), Values: []any{"data", "old"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 2 {
		want[i] = mustID(t, adds[i].Val())
	}

	got := make([]notice.ID, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.Follow(ctx, u)
		})
	}
	close(start)
	wg.Wait()
	for i := range users {
		if errs[i] != nil || got[i] != want[i] {
			t.Fatalf("user %d: Follow = %v, %v; want %v", i, got[i], errs[i], want[i])
		}
	}

	pipe = raw.Pipeline()
	for _, u := range users {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.key(u), Values: []any{"data", "new"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	waitNotified(t, s, rec, raw)
	for i, u := range users {
		if rec.Count(u) == 0 {
			t.Errorf("user %d was not notified", i)
		}
	}
}

// Users followed and unfollowed over and over, many at once: each ends
// notified exactly when its last call was Follow, and nothing is left
// subscribed that is not followed.
func TestFollowUnfollowInterleaved(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	rec := storetest.NewRecorder()
	s.SetNotifier(rec)
	raw := rawClient(t, srv)
	ctx := testCtx(t)

	const n = 300
	users := make([]string, n)
	for i := range users {
		users[i] = user(fmt.Sprint("toggle", i))
	}
	calls := func(i int) int { return 1 + i%6 } // odd: ends with Follow
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			for c := range calls(i) {
				var err error
				if c%2 == 0 {
					_, err = s.Follow(ctx, u)
				} else {
					err = s.Unfollow(ctx, u)
				}
				if err != nil {
					t.Errorf("user %d, call %d: %v", i, c, err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkFollowState(t, s, rec, raw, users, func(i int) bool { return calls(i)%2 == 1 })
}

// The same user's Follow and Unfollow racing each other, which the hub
// never does: whichever comes last wins (a Follow the Unfollow overtook
// says so), and the store agrees with Redis about it.
func TestFollowRacesUnfollow(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	rec := storetest.NewRecorder()
	s.SetNotifier(rec)
	raw := rawClient(t, srv)
	ctx := testCtx(t)

	const n = 200
	users := make([]string, n)
	for i := range users {
		users[i] = user(fmt.Sprint("race", i))
	}
	overtaken := make([]bool, n)
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			_, err := s.Follow(ctx, u)
			if errors.Is(err, errSuperseded) {
				overtaken[i] = true
			} else if err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if err := s.Unfollow(ctx, u); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	waitNoPending(t, s)
	checkFollowState(t, s, rec, raw, users, func(i int) bool {
		subscribed := subscribers(t, raw, s.channel(users[i])) == 1
		if subscribed && overtaken[i] {
			t.Errorf("user %d: Follow said it was overtaken, yet the user is followed", i)
		}
		return subscribed
	})
}

// A Follow whose context ends while its SUBSCRIBE awaits confirmation
// returns the context's error at once and leaves nothing subscribed; the
// other Follows of its batch go on, and following the user again works.
func TestFollowCancelledMidBatch(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	rec := storetest.NewRecorder()
	s.SetNotifier(rec)
	raw := rawClient(t, srv)
	ctx := testCtx(t)

	// Frozen, Redis takes the SUBSCRIBE into its socket buffer and
	// confirms nothing. (Its Pub/Sub connection is made first: a new one
	// would wait for the frozen Redis to greet it.)
	if _, err := s.Follow(ctx, user("warm-up")); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume()
		}
	}()
	quitter, stayers := user("quitter"), []string{user("stayer"), user("stayer")}
	qctx, cancel := context.WithCancel(ctx)
	quit := make(chan error, 1)
	go func() {
		_, err := s.Follow(qctx, quitter)
		quit <- err
	}()
	stayed := make(chan error, len(stayers))
	for _, u := range stayers {
		go func() {
			_, err := s.Follow(ctx, u)
			stayed <- err
		}()
	}
	waitFor(t, "every SUBSCRIBE to be sent", func() bool {
		n := s.only()
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, u := range append([]string{quitter}, stayers...) {
			if n.pending[s.channel(u)] == nil {
				return false
			}
		}
		return true
	})
	cancel()
	if err := <-quit; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Follow: %v; want context.Canceled", err)
	}
	srv.Resume()
	resumed = true
	for range stayers {
		if err := <-stayed; err != nil {
			t.Fatalf("Follow in the same batch: %v", err)
		}
	}
	waitNoPending(t, s)
	checkFollowState(t, s, rec, raw, append([]string{quitter}, stayers...), func(i int) bool { return i > 0 })
	if n := subscribers(t, raw, s.channel(quitter)); n != 0 {
		t.Errorf("cancelled user's channel has %d subscribers", n)
	}

	// The hub tries again, and this time waits.
	if _, err := s.Follow(ctx, quitter); err != nil {
		t.Fatal(err)
	}
	xadd(t, raw, s, quitter)
	rec.WaitChanged(t, quitter, 1)
}

// A batch whose confirmations the connection's loss would swallow is sent
// again, and its Follows return once that is confirmed.
func TestUnconfirmedBatchIsSentAgain(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	rec := storetest.NewRecorder()
	s.SetNotifier(rec)
	raw := rawClient(t, srv)
	ctx := testCtx(t)
	if _, err := s.Follow(ctx, user("warm-up")); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume()
		}
	}()
	u := user("resent")
	done := make(chan error, 1)
	go func() {
		_, err := s.Follow(ctx, u)
		done <- err
	}()
	sent := func() bool {
		n := s.only()
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.pending[s.channel(u)] != nil
	}
	waitFor(t, "the SUBSCRIBE to be sent", sent)
	// As the reader does when the connection fails: go-redis has a new
	// one by then, and this SUBSCRIBE may never have reached Redis.
	s.only().markLost(errors.New("test: connection lost"))
	waitFor(t, "the SUBSCRIBE to be sent again", sent)
	srv.Resume()
	resumed = true
	if err := <-done; err != nil {
		t.Fatalf("Follow: %v", err)
	}
	waitFor(t, "Resync", func() bool { return rec.Resyncs() > 0 })
	waitNoPending(t, s)
	checkFollowState(t, s, rec, raw, []string{u}, func(int) bool { return true })
}

// Close answers a Follow still waiting for Redis.
func TestCloseAnswersWaitingFollow(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s, err := New(testCtx(t), Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	s.SetNotifier(storetest.NewRecorder())
	ctx := testCtx(t)
	if _, err := s.Follow(ctx, user("warm-up")); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	defer srv.Resume()
	u := user("closed")
	done := make(chan error, 1)
	go func() {
		_, err := s.Follow(ctx, u)
		done <- err
	}()
	waitFor(t, "the SUBSCRIBE to be sent", func() bool {
		n := s.only()
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.pending[s.channel(u)] != nil
	})
	_ = s.Close()
	if err := <-done; err == nil {
		t.Fatal("Follow cut short by Close returned no error")
	}
}

// checkFollowState appends an entry for every user and checks that users
// for which followed(i) holds were notified, that the others were not,
// and that Redis holds a subscription for exactly the first.
func checkFollowState(t *testing.T, s *Store, rec *storetest.Recorder, raw *redis.Client, users []string, followed func(int) bool) {
	t.Helper()
	ctx := testCtx(t)
	want := make([]bool, len(users))
	for i := range users {
		want[i] = followed(i)
	}
	before := make([]int, len(users))
	for i, u := range users {
		before[i] = rec.Count(u)
	}
	pipe := raw.Pipeline()
	for _, u := range users {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.key(u), Values: []any{"data", "x"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	waitNotified(t, s, rec, raw)
	waitNoPending(t, s)
	for i, u := range users {
		if got := rec.Count(u) > before[i]; got != want[i] {
			t.Errorf("user %d: notified %v, want %v", i, got, want[i])
		}
		if got := subscribers(t, raw, s.channel(u)) == 1; got != want[i] {
			t.Errorf("user %d: subscribed in Redis %v, want %v", i, got, want[i])
		}
	}
}

// waitNotified follows a fresh marker user and waits for its notification:
// Pub/Sub keeps order on the one connection, so every notification for an
// entry appended before the marker's has arrived by then.
func waitNotified(t *testing.T, s *Store, rec *storetest.Recorder, raw *redis.Client) {
	t.Helper()
	marker := user("marker")
	if _, err := s.Follow(testCtx(t), marker); err != nil {
		t.Fatal(err)
	}
	xadd(t, raw, s, marker)
	rec.WaitChanged(t, marker, 1)
	if err := s.Unfollow(testCtx(t), marker); err != nil {
		t.Fatal(err)
	}
}

// waitNoPending waits until Redis has confirmed every SUBSCRIBE and
// UNSUBSCRIBE sent, and so has run them.
func waitNoPending(t *testing.T, s *Store) {
	t.Helper()
	waitFor(t, "no pending subscriptions", func() bool {
		return s.only().pendingCount() == 0
	})
}

// subscribers asks Redis how many clients are subscribed to channel.
func subscribers(t *testing.T, raw *redis.Client, channel string) int64 {
	t.Helper()
	m, err := raw.PubSubNumSub(testCtx(t), channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m[channel]
}
