package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestIsolationAtScale: 200 users with 3 streams each, through nginx and
// spread over two instances; half of the events XADDed by a producer,
// half POSTed through nginx. Every stream gets exactly its user's events,
// in order, once.
func TestIsolationAtScale(t *testing.T) {
	const users, perUser, events = 200, 3, 10
	start := time.Now()
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	names := usersNamed("user", users)
	streams, err := c.subscribeAll(ctx, names, perUser)
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	split := c.spread(t, users*perUser)

	if err := c.publish(ctx, names, 0, events); err != nil {
		t.Fatal(err)
	}
	published := time.Now()
	if err := c.waitDelivered(ctx, streams); err != nil {
		t.Fatal(err)
	}
	delivered := time.Now()

	n := c.check(ctx, streams)
	t.Logf("%d streams open in %v (A %d, B %d); %d events published in %v; all delivered %v later",
		len(streams), opened.Sub(start).Round(time.Millisecond), split[0], split[1],
		n.events, published.Sub(opened).Round(time.Millisecond), delivered.Sub(published).Round(time.Millisecond))
	t.Logf("isolation: %v", n)
	fmt.Printf("e2e isolation: users=%d streams_on_A=%d streams_on_B=%d %v post_retries=%d\n",
		users, split[0], split[1], n, c.postRetries.Load())
	if !n.clean() {
		t.Errorf("isolation: %v; want every expected event received once and nothing else", n)
	}
}
