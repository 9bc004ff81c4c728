package redisstore

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
)

// Many producers at once: their Appends share pipelines, and each still
// gets the ids of its own messages, in its order, and Redis holds every
// message once under the id its producer was given.
func TestConcurrentAppendsGetTheirOwnIDs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL(), TTL: -1})
	raw := rawClient(t, srv)
	users := []string{user("a"), user("b"), user("c")}
	const producers, each = 64, 20
	type sent struct {
		user, data string
		id         notice.ID
	}
	got := make(chan sent, producers*each*2)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				msgs := []routing.Message{
					{User: users[(p+i)%3], Data: fmt.Sprintf("p%d-%d-x", p, i)},
					{User: users[(p+i+1)%3], Event: "e", Data: fmt.Sprintf("p%d-%d-y", p, i)},
				}
				ids, err := s.Append(testCtx(t), msgs)
				if err != nil || len(ids) != 2 {
					t.Errorf("Append: %v, %d ids", err, len(ids))
					return
				}
				for k, m := range msgs {
					got <- sent{m.User, m.Data, ids[k]}
				}
			}
		})
	}
	wg.Wait()
	close(got)
	byID := map[string]sent{}
	for g := range got {
		byID[g.user+" "+g.id.String()] = g
	}
	total := 0
	for _, u := range users {
		entries, err := raw.XRange(testCtx(t), s.key(u), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		total += len(entries)
		for _, e := range entries {
			want, ok := byID[u+" "+e.ID]
			if !ok {
				t.Fatalf("entry %s of %s was not an id any Append returned", e.ID, u)
			}
			if e.Values["data"] != want.data {
				t.Fatalf("entry %s of %s holds %v, its Append sent %q", e.ID, u, e.Values["data"], want.data)
			}
		}
	}
	if total != producers*each*2 || len(byID) != total {
		t.Fatalf("Redis holds %d entries, Appends returned %d distinct ids; want %d", total, len(byID), producers*each*2)
	}
}

// One request that Redis refuses (its key is not a stream) fails alone,
// though it shared a pipeline with others.
func TestRefusedAppendFailsOnlyItsRequest(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL(), TTL: -1})
	raw := rawClient(t, srv)
	bad, good := user("bad"), user("good")
	if err := raw.Set(testCtx(t), s.key(bad), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed, ok := 0, 0
	for i := range 200 {
		wg.Go(func() {
			u := good
			if i%10 == 0 {
				u = bad
			}
			_, err := s.Append(testCtx(t), []routing.Message{{User: u, Data: "d"}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case u == bad && err != nil:
				failed++
			case u == good && err == nil:
				ok++
			default:
				t.Errorf("Append to %s: %v", u, err)
			}
		})
	}
	wg.Wait()
	if failed != 20 || ok != 180 {
		t.Fatalf("%d refused, %d accepted; want 20 and 180", failed, ok)
	}
	if n := raw.XLen(testCtx(t), s.key(good)).Val(); n != 180 {
		t.Fatalf("%d entries for the good user, want 180", n)
	}
}

// -publish-replicas: an Append that no replica acknowledges in time fails
// with ErrNotReplicated, which callers answer 503 for; one a replica holds
// succeeds.
func TestAppendWaitsForReplicas(t *testing.T) {
	t.Parallel()
	master := redistest.Start(t)
	lone := newStore(t, Options{URL: master.URL(), Replicas: 1, ReplicasTimeout: 50 * time.Millisecond})
	ctx := testCtx(t)
	_, err := lone.Append(ctx, []routing.Message{{User: user("wait"), Data: "x"}})
	if !errors.Is(err, ErrNotReplicated) || !errors.Is(err, routing.ErrUnavailable) {
		t.Fatalf("Append with no replica: %v; want ErrNotReplicated, ErrUnavailable", err)
	}
	redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port()))
	s := newStore(t, Options{URL: master.URL(), Replicas: 1, ReplicasTimeout: 5 * time.Second})
	waitFor(t, "the replica to attach", func() bool {
		_, err := s.Append(ctx, []routing.Message{{User: user("wait"), Data: "y"}})
		return err == nil
	})
}
