package redistest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// setupLimit bounds how long a Sentinel or Cluster set-up may take to
// reach the state a test needs.
const setupLimit = 30 * time.Second

// Do sends one command to the server at addr on a connection of its own
// and returns the reply.
func Do(addr string, args ...any) (any, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, Protocol: 2,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Do(ctx, args...).Result()
}

// info returns field of INFO section at addr, or "" when unknown.
func info(addr, section, field string) string {
	v, err := Do(addr, "INFO", section)
	if err != nil {
		return ""
	}
	text, _ := v.(string)
	for line := range strings.SplitSeq(text, "\r\n") {
		if value, ok := strings.CutPrefix(line, field+":"); ok {
			return value
		}
	}
	return ""
}

// waitUntil polls cond every 20ms until it holds, failing t after setupLimit.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(setupLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("redistest: timed out after %v waiting for %s", setupLimit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
