package redisstore

import (
	"fmt"
	"sync"
	"testing"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
)

// Read-backs that share a pipeline each get their own user's entries, and
// one refused (a key of another type) fails only its caller.
func TestConcurrentReadBacksGetTheirOwnEntries(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL(), TTL: -1})
	raw := rawClient(t, srv)
	const users = 100
	names := make([]string, users)
	for i := range names {
		names[i] = user(fmt.Sprint("rb", i))
		msgs := make([]routing.Message, i%5+1)
		for k := range msgs {
			msgs[k] = routing.Message{User: names[i], Data: fmt.Sprint(names[i], "#", k)}
		}
		if _, err := s.Append(testCtx(t), msgs); err != nil {
			t.Fatal(err)
		}
	}
	bad := user("rb-bad")
	if err := raw.Set(testCtx(t), s.key(bad), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for round := range 4 {
		for i, u := range names {
			wg.Go(func() {
				entries, err := s.ReadBack(testCtx(t), u, notice.Last, 10)
				if err != nil {
					t.Errorf("ReadBack(%s): %v", u, err)
					return
				}
				if len(entries) != i%5+1 {
					t.Errorf("ReadBack(%s) in round %d: %d entries, want %d", u, round, len(entries), i%5+1)
					return
				}
				for k, e := range entries { // newest first
					if want := fmt.Sprint(u, "#", len(entries)-1-k); e.Data != want {
						t.Errorf("ReadBack(%s): entry %d is %q, want %q", u, k, e.Data, want)
					}
				}
			})
		}
		wg.Go(func() {
			if _, err := s.ReadBack(testCtx(t), bad, notice.Last, 10); err == nil {
				t.Error("ReadBack of a key that is not a stream did not fail")
			}
		})
	}
	wg.Wait()
}
