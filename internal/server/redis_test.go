package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/redisstore"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
)

func newRedisEnv(t *testing.T, srv *redistest.Server, o envOptions) (*env, *redis.Client) {
	t.Helper()
	maxLen := int64(o.maxLen)
	if maxLen == 0 {
		maxLen = 1000
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := redisstore.New(ctx, redisstore.Options{URL: srv.URL(), MaxLen: maxLen, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	o.store = store
	producer := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { producer.Close() })
	return newEnv(t, o), producer
}

// xadd writes as a producer would: XADD notice:{user} MAXLEN ~ 5 * ...
// (5 so that trimming shows in short tests).
func xadd(t *testing.T, rdb *redis.Client, user string, fields ...any) string {
	t.Helper()
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{
		Stream: "notice:{" + user + "}", MaxLen: 5, Approx: true, Values: fields,
	}).Result()
	if err != nil {
		t.Fatalf("XADD: %v", err)
	}
	return id
}

func TestRedisProducersAndPublishersAlike(t *testing.T) {
	t.Parallel()
	e, rdb := newRedisEnv(t, redistest.Start(t), envOptions{})
	a, b := e.subscribe("ann"), e.subscribe("ann")
	other := e.subscribe("ben")
	ids := []string{
		xadd(t, rdb, "ann", "event", "order.shipped", "data", `{"order":1}`),
		e.mustPublish("ann", "order.shipped", `{"order":2}`),
		xadd(t, rdb, "ann", "zeta", "1", "event", "invoice", "alpha", "two"),
		xadd(t, rdb, "ann", "data", "multi\nline"),
	}
	want := []struct{ typ, data string }{
		{"order.shipped", `{"order":1}`},
		{"order.shipped", `{"order":2}`},
		{"invoice", `{"zeta":"1","alpha":"two"}`},
		{"message", "multi\nline"},
	}
	for _, s := range []*stream{a, b} {
		for i, id := range ids {
			ev := s.next(t)
			if ev.ID != id || ev.Type != want[i].typ || ev.Data != want[i].data {
				t.Fatalf("event %d: got %+v, want id %s %+v", i, ev, id, want[i])
			}
		}
	}
	other.none(t)
}

func TestRedisReplayAndGap(t *testing.T) {
	t.Parallel()
	e, rdb := newRedisEnv(t, redistest.Start(t), envOptions{maxLen: 5})
	var ids []string
	for i := range 300 {
		ids = append(ids, xadd(t, rdb, "cal", "data", fmt.Sprint(i)))
	}
	// The ~ in MAXLEN trims whole nodes: some early entries are gone.
	s := e.subscribe("cal", "lastEventId", ids[0])
	if ev := s.next(t); ev.Type != "gap" || ev.HasID {
		t.Fatalf("first event %+v, want gap", ev)
	}
	first := s.next(t)
	n := 1
	for first.ID != ids[300-n] && n < 300 {
		n++
	}
	for i := 300 - n + 1; i < 300; i++ {
		if ev := s.next(t); ev.ID != ids[i] {
			t.Fatalf("replay: got %s, want %s", ev.ID, ids[i])
		}
	}
	// From a retained id: exactly what follows, no gap.
	s2 := e.subscribe("cal", "lastEventId", ids[297])
	for _, want := range ids[298:] {
		if ev := s2.next(t); ev.ID != want {
			t.Fatalf("got %+v, want %s", ev, want)
		}
	}
	live := e.mustPublish("cal", "", "live")
	if ev := s2.next(t); ev.ID != live {
		t.Fatalf("live after replay: got %s, want %s", ev.ID, live)
	}
}

// TestRedisRestartLosesNothing kills redis-server mid-stream and restarts
// it on the same append-only file: open streams stay open with heartbeats,
// /readyz and publishing answer 503 meanwhile, a stream opened during the
// outage is accepted, and afterwards every stream has every entry exactly
// once.
func TestRedisRestartLosesNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	e, rdb := newRedisEnv(t, srv, envOptions{heartbeat: 100 * time.Millisecond})
	users := []string{"dee", "eve"}
	streams := map[string][]*stream{}
	for _, u := range users {
		streams[u] = []*stream{e.subscribe(u), e.subscribe(u)}
	}
	sent := map[string][]string{}
	publishAll := func(tag string, n int) {
		for i := range n {
			for _, u := range users {
				sent[u] = append(sent[u], e.mustPublish(u, "", fmt.Sprintf("%s-%d", tag, i)))
			}
		}
	}
	publishAll("before", 10)

	srv.Kill()
	waitFor(t, "/readyz to turn 503", func() bool { return status(t, e.url+"/readyz") == http.StatusServiceUnavailable })
	if code, out := e.publish(map[string]any{"user": "dee", "data": "x"}); code != http.StatusServiceUnavailable {
		t.Fatalf("publish during the outage: %d %v, want 503", code, out)
	}
	// Open streams keep their heartbeats.
	for _, s := range streams["dee"] {
		waitComment(t, s)
	}
	// A stream opened now is accepted and waits for Redis.
	late := e.subscribe("dee", "lastEventId", sent["dee"][len(sent["dee"])-1])

	srv.Restart()
	// Written straight to Redis before noticed may even have reconnected.
	sent["eve"] = append(sent["eve"], xadd(t, rdb, "eve", "data", "right after restart"))
	waitFor(t, "/readyz to turn 200", func() bool { return status(t, e.url+"/readyz") == http.StatusOK })
	publishAll("after", 10)

	for _, u := range users {
		for i, s := range streams[u] {
			for _, want := range sent[u] {
				if ev := s.next(t); ev.ID != want {
					t.Fatalf("%s stream %d: got %s (%q), want %s", u, i, ev.ID, ev.Data, want)
				}
			}
			s.none(t)
		}
	}
	for _, want := range sent["dee"][10:] {
		if ev := late.next(t); ev.ID != want {
			t.Fatalf("stream opened in the outage: got %s, want %s", ev.ID, want)
		}
	}
	t.Logf("every stream got all %d+%d entries exactly once across the restart", len(sent["dee"]), len(sent["eve"]))
}

func status(t *testing.T, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitComment(t *testing.T, s *stream) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-s.events:
			if ev.Comment {
				return
			}
			s.pending = append(s.pending, ev) // for next to return in order
		case <-timeout:
			t.Fatal("no heartbeat during the outage")
		}
	}
}

var _ routing.Store = (*redisstore.Store)(nil)
