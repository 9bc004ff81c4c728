package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestOnRedisCluster runs the deployment (two instances behind
// deploy/nginx.conf) on a Redis Cluster of three masters and three
// replicas: streams of many users, whose keys spread over the masters, get
// their own events and nothing else; then an instance is killed and its
// streams move to the other, which follows their users on every master.
func TestOnRedisCluster(t *testing.T) {
	const users, perUser = 120, 2
	start := time.Now()
	c := newClusterOnRedisCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	names := usersNamed("rc", users)
	streams, err := c.subscribeAll(ctx, names, perUser)
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	split := c.spread(t, users*perUser)
	if err := c.publish(ctx, names, 0, 5); err != nil {
		t.Fatal(err)
	}
	published := time.Now()
	if err := c.waitDelivered(ctx, streams); err != nil {
		t.Fatal(err)
	}
	n := c.check(ctx, streams)
	t.Logf("Redis Cluster: %d streams open in %v (A %d, B %d); delivered %v after publishing; %v",
		len(streams), opened.Sub(start).Round(time.Millisecond), split[0], split[1], time.Since(published).Round(time.Millisecond), n)
	fmt.Printf("e2e redis-cluster isolation: users=%d streams_on_A=%d streams_on_B=%d %v post_retries=%d\n",
		users, split[0], split[1], n, c.postRetries.Load())
	if !n.clean() {
		t.Fatalf("isolation on a Redis Cluster: %v; want every event once and nothing else", n)
	}

	victim := c.inst[0]
	killed := time.Now()
	victim.kill()
	if err := c.publish(ctx, names, 5, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.waitDelivered(ctx, streams); err != nil {
		t.Fatal(err)
	}
	moved := checkMoved(t, streams, split[0], killed)
	n = c.check(ctx, streams)
	t.Logf("Redis Cluster, instance SIGKILL: %d streams moved; %v", len(moved), n)
	fmt.Printf("e2e redis-cluster failover SIGKILL: moved=%d %v post_retries=%d\n", len(moved), n, c.postRetries.Load())
	if !n.clean() {
		t.Errorf("after SIGKILL on a Redis Cluster: %v; want every event once", n)
	}
}
