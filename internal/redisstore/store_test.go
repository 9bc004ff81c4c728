package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/routing/storetest"
)

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T, o storetest.Options) routing.Store {
		return newStore(t, Options{URL: srv.URL(), MaxLen: o.MaxLen, TTL: o.TTL})
	})
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newStore makes a store closed when the test ends.
func newStore(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := New(testCtx(t), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// rawClient is a plain client, standing for a producer or an operator.
func rawClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var userSeq atomic.Int64

func user(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), userSeq.Add(1))
}

// waitFor polls cond until it holds, failing the test after 15s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewWithoutRedisIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Kill()
	_, err := New(testCtx(t), Options{URL: srv.URL()})
	if !errors.Is(err, routing.ErrUnavailable) {
		t.Fatalf("New against a dead server: %v; want ErrUnavailable", err)
	}
}

func TestNewBadURL(t *testing.T) {
	t.Parallel()
	_, err := New(testCtx(t), Options{URL: "http://user:hunter2@example.com"})
	if err == nil || errors.Is(err, routing.ErrUnavailable) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad URL: %v; want a plain error without the password", err)
	}
}

func TestRetention(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	raw := rawClient(t, srv)
	tests := []struct {
		name        string
		o           Options
		wantPTTL    time.Duration // 0: no expiry
		wantAll     bool          // all 300 appends kept
		wantMaxKept int64
	}{
		{"defaults", Options{}, DefaultTTL, true, 0},
		{"no expiry, no trimming", Options{TTL: -1, MaxLen: -1}, 0, true, 0},
		{"short", Options{TTL: time.Minute, MaxLen: 5}, time.Minute, false, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.URL = srv.URL()
			tt.o.Prefix = "ret:"
			s := newStore(t, tt.o)
			u := user("ret")
			msgs := make([]routing.Message, 300)
			for i := range msgs {
				msgs[i] = routing.Message{User: u, Data: "x"}
			}
			if _, err := s.Append(testCtx(t), msgs); err != nil {
				t.Fatal(err)
			}
			key := "ret:{" + u + "}"
			pttl := raw.PTTL(testCtx(t), key).Val()
			if tt.wantPTTL == 0 && pttl >= 0 || tt.wantPTTL > 0 && (pttl <= tt.wantPTTL-time.Minute/2 || pttl > tt.wantPTTL) {
				t.Errorf("PTTL %v, want about %v", pttl, tt.wantPTTL)
			}
			n := raw.XLen(testCtx(t), key).Val()
			if tt.wantAll && n != 300 || !tt.wantAll && n > tt.wantMaxKept {
				t.Errorf("XLEN %d after 300 appends", n)
			}
		})
	}
}

func TestWrongTypeIsNotUnavailable(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := newStore(t, Options{URL: srv.URL()})
	u := user("wrongtype")
	rawClient(t, srv).Set(testCtx(t), s.key(u), "not a stream", 0)
	_, err := s.Append(testCtx(t), []routing.Message{{User: u, Data: "x"}})
	if err == nil || errors.Is(err, routing.ErrUnavailable) {
		t.Errorf("Append to a string key: %v; want an error that is not ErrUnavailable", err)
	}
	_, err = s.Read(testCtx(t), []routing.Cursor{{User: u, Count: 1, After: notice1, CheckGap: true}})
	if err == nil || errors.Is(err, routing.ErrUnavailable) {
		t.Errorf("Read of a string key: %v; want an error that is not ErrUnavailable", err)
	}
}

func TestPresenceConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunPresence(t, func(t *testing.T) presence.Backend {
		return newStore(t, Options{URL: srv.URL()}).Presence(storetest.User(t))
	}, true)
}
