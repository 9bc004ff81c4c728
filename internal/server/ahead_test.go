package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/sse"
)

// boundedClient ends a read that would otherwise wait for ever on a
// stream that went silent: the failure this file tests for.
var boundedClient = &http.Client{Timeout: 10 * time.Second}

// A Last-Event-ID past the newest entry (lost in a failover, from a Redis
// whose clock went back, or made up, up to the largest id there is) gets
// a gap, a position to come back from, and then live events, on both
// backends. Before, such a stream stayed open and silent for good, or, at
// the top of the id range, retried a failing Redis read for ever.
func TestLastEventIDPastTheNewest(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) *env{
		"memory": func(t *testing.T) *env { return newEnv(t, envOptions{}) },
		"redis": func(t *testing.T) *env {
			e, _ := newRedisEnv(t, redistest.Start(t), envOptions{})
			return e
		},
	}
	for name, newBackend := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newBackend(t)
			e.hostile()
			past := []func(newest notice.ID) notice.ID{
				func(n notice.ID) notice.ID { return notice.ID{Ms: n.Ms + 3600_000} },
				func(n notice.ID) notice.ID { return notice.ID{Ms: n.Ms, Seq: n.Seq + 1} },
				func(notice.ID) notice.ID { return notice.Last },
			}
			last := e.mustPublish("ivy", "", "before")
			for _, next := range past {
				newest, err := notice.ParseID(last)
				if err != nil {
					t.Fatal(err)
				}
				from := next(newest).String()
				resp, err := boundedClient.Get(e.url + "/notice?lastEventId=" + from + "&token=" + token(t, "ivy"))
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("from %s: status %d", from, resp.StatusCode)
				}
				r := sse.NewReader(resp.Body)
				ev, err := r.Next()
				if err != nil || ev.Type != "gap" || ev.Data != fmt.Sprintf(`{"lastEventId":%q}`, from) {
					t.Fatalf("from %s: first event %+v, %v; want a gap", from, ev, err)
				}
				live := e.mustPublish("ivy", "", "after "+from)
				if ev, err = r.Next(); err != nil || ev.ID != live {
					t.Fatalf("from %s: got %+v, %v; want the live event %s", from, ev, err, live)
				}
				resp.Body.Close()
				last = live
			}
			waitFor(t, "every stream to be released", func() bool { return testutil.ToFloat64(e.metrics.StreamsOpen) == 0 })
		})
	}
}

// Before the first live event, the stream gives the browser the position
// it goes on from, so that a reconnect does not ask from the future again.
func TestLastEventIDPastTheNewestGivesAPosition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{heartbeat: 50 * time.Millisecond})
	e.hostile()
	newest := e.mustPublish("ike", "", "before")
	resp, err := boundedClient.Get(e.url + "/notice?lastEventId=" + notice.Last.String() + "&token=" + token(t, "ike"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := sse.NewReader(resp.Body)
	r.Comments = true
	if ev, err := r.Next(); err != nil || ev.Type != "gap" {
		t.Fatalf("first event %+v, %v; want a gap", ev, err)
	}
	for r.LastID() == "" {
		if ev, err := r.Next(); err != nil || !ev.Comment {
			t.Fatalf("after the gap: %+v, %v", ev, err)
		}
	}
	if r.LastID() != newest {
		t.Fatalf("position %q, want the newest entry %s", r.LastID(), newest)
	}
}
