package redisstore

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing/storetest"
)

// The per-node series carry the master's address and count what is
// followed there.
func TestNodeMetrics(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	s.SetNotifier(storetest.NewRecorder())
	for _, u := range []string{user("m"), user("m")} {
		if _, err := s.Follow(testCtx(t), u); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	want := `
# HELP noticed_redis_followed_users Followed users whose keyspace channel is subscribed on the Redis master.
# TYPE noticed_redis_followed_users gauge
noticed_redis_followed_users{node="` + srv.Addr() + `"} 2
# HELP noticed_redis_pubsub_up 1 when this instance's Pub/Sub connection to the Redis master is up, 0 while it reconnects.
# TYPE noticed_redis_pubsub_up gauge
noticed_redis_pubsub_up{node="` + srv.Addr() + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "noticed_redis_followed_users", "noticed_redis_pubsub_up"); err != nil {
		t.Error(err)
	}
}
