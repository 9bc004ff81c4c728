package memstore

import (
	"testing"

	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/routing/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, o storetest.Options) routing.Store {
		s := New(Options{MaxLen: int(o.MaxLen), TTL: o.TTL})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPresenceConformance(t *testing.T) {
	storetest.RunPresence(t, func(t *testing.T) presence.Backend {
		s := New(Options{MaxLen: 100})
		t.Cleanup(func() { s.Close() })
		return presence.NewLocal(s, "")
	}, false)
}
