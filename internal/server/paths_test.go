package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/sse"
)

// A stream is taken over from the HTTP server after its headers (by the
// front door or by net/http) and from then on runs on timers and the
// hub's wake-ups. What depends on that (delivery, heartbeats, a stalled
// reader, token expiry, shutdown) is checked here.
func TestTakenOverStreams(t *testing.T) {
	t.Run("delivery", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{})
		a1, a2, b := e.subscribe("ann"), e.subscribe("ann"), e.subscribe("bob")
		var ids []string
		for i := range 50 {
			ids = append(ids, e.mustPublish("ann", "", strings.Repeat("x", i)))
		}
		bobID := e.mustPublish("bob", "note", "for bob")
		for _, s := range []*stream{a1, a2} {
			for i, id := range ids {
				if ev := s.next(t); ev.ID != id || len(ev.Data) != i {
					t.Fatalf("ann got %+v, want id %s", ev, id)
				}
			}
		}
		if ev := b.next(t); ev.ID != bobID || ev.Type != "note" || ev.Data != "for bob" {
			t.Fatalf("bob got %+v", ev)
		}
		a1.none(t)
	})
	t.Run("heartbeat", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{heartbeat: 30 * time.Millisecond})
		s := e.subscribe("cy")
		for n := 0; n < 3; {
			select {
			case ev := <-s.events:
				if ev.Comment && ev.Data == " ping" {
					n++
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no heartbeat")
			}
		}
	})
	t.Run("stalled reader closed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{queueLen: 4})
		e.hostile()
		req, _ := http.NewRequest(http.MethodGet, e.url+"/notice?token="+token(t, "dee"), nil)
		stalled, err := http.DefaultClient.Do(req)
		if err != nil || stalled.StatusCode != http.StatusOK {
			t.Fatalf("stalled stream: %v %v", err, stalled)
		}
		defer stalled.Body.Close()
		reader := e.subscribe("dee")
		big := strings.Repeat("y", 32<<10)
		for i := 0; testutil.ToFloat64(e.metrics.SlowClosed) == 0; i++ {
			if i == 2000 {
				t.Fatal("2000 events of 32 KiB and the stalled stream is still open")
			}
			id := e.mustPublish("dee", "", big)
			if ev := reader.next(t); ev.ID != id {
				t.Fatalf("reading stream got %s, want %s", ev.ID, id)
			}
		}
		waitFor(t, "the slow stream to close", func() bool { return testutil.ToFloat64(e.metrics.StreamsOpen) == 1 })
		id := e.mustPublish("dee", "", "still here")
		if ev := reader.next(t); ev.ID != id {
			t.Fatalf("after the slow one closed: got %s, want %s", ev.ID, id)
		}
	})
	t.Run("token expiry says retry", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{})
		tok, err := auth.Sign(secret, "eve", 1500*time.Millisecond, nil, "", "")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(e.url + "/notice?token=" + tok)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := sse.NewReader(resp.Body)
		retries := 0
		for {
			_, err := r.Next()
			if r.Retry() > 0 {
				retries++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("stream ended with %v, want EOF", err)
			}
		}
		if r.Retry() <= 0 || r.Retry() > 2000 {
			t.Fatalf("last retry %d ms, want a short one (0.1–2 s) at the end", r.Retry())
		}
		waitFor(t, "the stream to leave the hub", func() bool { return testutil.ToFloat64(e.metrics.StreamsOpen) == 0 })
	})
	t.Run("hub closing ends streams", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{})
		s := e.subscribe("fay")
		id := e.mustPublish("fay", "", "before closing")
		if ev := s.next(t); ev.ID != id {
			t.Fatalf("got %+v, want %s", ev, id)
		}
		e.hub.Close()
		select {
		case err := <-s.done:
			if err != io.EOF {
				t.Fatalf("stream ended with %v, want EOF", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stream still open after the hub closed")
		}
	})
}
