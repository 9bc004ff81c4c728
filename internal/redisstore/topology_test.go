package redisstore

import (
	"strings"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/routing/storetest"
)

func TestConformanceSentinel(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinel(t)
	storetest.Run(t, func(t *testing.T, o storetest.Options) routing.Store {
		return newStore(t, Options{URL: set.URL(), MaxLen: o.MaxLen, TTL: o.TTL})
	})
	storetest.RunPresence(t, func(t *testing.T) presence.Backend {
		return newStore(t, Options{URL: set.URL()}).Presence(storetest.User(t))
	}, true)
}

func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	for _, key := range []string{"a{}b", "x{y}{z}", "{}{a}", "notice:{é}", "plain"} {
		v, err := redistest.Do(c.Nodes[0].Addr(), "CLUSTER", "KEYSLOT", key)
		if err != nil || v != int64(keySlot(key)) {
			t.Errorf("CLUSTER KEYSLOT %q = %v (%v); keySlot says %d", key, v, err, keySlot(key))
		}
	}
	storetest.Run(t, func(t *testing.T, o storetest.Options) routing.Store {
		return newStore(t, Options{URL: c.URL(), MaxLen: o.MaxLen, TTL: o.TTL})
	})
	storetest.RunPresence(t, func(t *testing.T) presence.Backend {
		return newStore(t, Options{URL: c.URL()}).Presence(storetest.User(t))
	}, true)
	// -publish-replicas: one pipeline and one WAIT per master, each
	// master's replica acknowledging its own share of the messages.
	t.Run("MixedAppendWaitsOnEveryMaster", func(t *testing.T) {
		t.Parallel()
		// A new cluster's replicas finish their first sync seconds later.
		for _, m := range c.Masters() {
			waitFor(t, "a replica online at "+m.Addr(), func() bool {
				v, _ := redistest.Do(m.Addr(), "INFO", "replication")
				s, _ := v.(string)
				return strings.Contains(s, ",state=online,")
			})
		}
		storetest.MixedAppend(t, newStore(t, Options{URL: c.URL(), Replicas: 1, ReplicasTimeout: 5 * time.Second}))
	})
}

func TestKeySlot(t *testing.T) {
	t.Parallel()
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]int{"123456789": 12739, "foo": 12182, "{user1000}.following": 3443, "notice:{user1000}": 3443} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}
