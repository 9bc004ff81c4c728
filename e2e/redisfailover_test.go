package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/redistest"
)

// The Redis failover tests run the deployment (two noticed processes
// behind deploy/nginx.conf) on Redis Sentinel or a Redis Cluster, with 50
// users × 2 streams through nginx, spread over both instances, and
// producers publishing throughout, half by POST through nginx, half by
// XADD (with -publish-replicas 1, XADD then WAIT 1 on the same connection)
// while Redis fails over or moves slots. They check on real processes what
// internal/redisstore's failover tests check on stores in one process:
//
//   - nothing arrives twice, out of order, or on another user's stream;
//   - every entry Redis still holds reaches every stream of its user, or
//     the stream was told of a gap (an instance whose last-read entry the
//     failover erased skips what the new master wrote below it);
//   - every stream that lacks an entry Redis lost after some instance read
//     it got a gap;
//   - with -publish-replicas 1, no acknowledged entry is lost; a live
//     reshard loses nothing at all;
//   - the streams stay open throughout (closed as slow excepted).

const (
	failoverUsers = 50
	// Each test's bound, set-up excepted.
	failoverLimit = 45 * time.Second
)

// acrossFault publishes until 100 entries are acknowledged, runs fault,
// publishes until 100 more are, then publishes one entry per user by
// XADD (after the fault, so no instance skips it), waits until every
// stream has its user's, and checks and prints what the streams got.
// slowBefore is r.slowClosed() when the streams opened.
func (r *faultRun) acrossFault(ctx context.Context, name string, replicas, slowBefore int, fault func()) {
	t := r.t
	t.Helper()
	start := time.Now()
	stop := r.publishWhile()
	if err := r.book.waitAcked(ctx, start, 100); err != nil {
		t.Fatal(err)
	}
	faulted := time.Now()
	fault()
	after := time.Now()
	if err := r.book.waitAcked(ctx, after, 100); err != nil {
		t.Fatal(err)
	}
	stop()
	for _, u := range r.users {
		if err := poll(ctx, func() bool { return r.pub.xadd(ctx, u).acked() }); err != nil {
			t.Fatalf("the last XADD for %s never acknowledged: %v (%s)", u, err, r.book.errorsOf())
		}
	}
	r.waitToldOfLoss(ctx)
	o, _ := r.settle(ctx, r.streams, nil)
	slow := r.keptOpen(slowBefore)
	t.Logf("%s took %v; failed publishes: %s", name, after.Sub(faulted).Round(time.Millisecond), r.book.errorsOf())
	fmt.Printf("e2e %s: %v; lost by Redis: acknowledged %d (read by no instance %d), read then lost %d; undelivered to streams told of a gap %d; streams that lacked a read-then-lost entry %d (without a gap %d); streams kept open %d/%d (closed as slow %d); publish-replicas %d\n",
		name, o, o.ackedMissing, o.ackedUnseen, o.lostRead, o.toldGap, o.lostStreams, o.missedGapless,
		len(r.streams)-reconnects(r.streams), len(r.streams), slow, replicas)
	if !o.cleanAcrossLoss() {
		t.Errorf("%s: %v, streams lacking a lost entry without a gap %d; want 0 lost, dup, misrouted, out of order, unknown", name, o, o.missedGapless)
	}
	if !r.book.lossy && !o.clean() {
		t.Errorf("%s: %v; want every entry once on every stream of its user", name, o)
	}
	if replicas > 0 && o.ackedMissing > 0 {
		t.Errorf("%s with -publish-replicas %d: %d acknowledged entries lost; want 0", name, replicas, o.ackedMissing)
	}
}

// TestOnSentinelFailover: SENTINEL FAILOVER while the producers publish.
// Without -publish-replicas what the old master acknowledged after its
// replica stopped following it is lost; the streams that had it from
// their instance keep it, the others hear of it with a gap.
func TestOnSentinelFailover(t *testing.T) {
	c := newClusterOnSentinel(t, "-heartbeat", faultHeartbeat)
	ctx, r := startFaultRunOf(t, c, "sfo", failoverUsers, failoverLimit)
	r.book.lossy = true
	r.acrossFault(ctx, "redis-sentinel SENTINEL FAILOVER", 0, r.slowClosed(), c.set.Failover)
}

// TestOnSentinelMasterKilled: the master is killed (SIGKILL); the
// sentinels promote the replica, and the old master comes back as its
// replica. With -publish-replicas 1 nothing acknowledged is lost: until
// the new master has a replica, publishes are refused.
func TestOnSentinelMasterKilled(t *testing.T) {
	c := newClusterOnSentinel(t, "-heartbeat", faultHeartbeat, "-publish-replicas", "1")
	ctx, r := startFaultRunOf(t, c, "skill", failoverUsers, failoverLimit)
	r.book.lossy = true
	r.pub.replicas = 1
	r.acrossFault(ctx, "redis-sentinel master SIGKILL", 1, r.slowClosed(), func() {
		old := c.set.Master()
		old.Kill()
		c.set.WaitNewMaster(old.Addr())
		c.set.Rejoin(old)
	})
}

// TestOnRedisClusterMasterKilled: the master of a followed user's slot is
// killed (SIGKILL); its replica takes over, and the old master comes back
// as its replica.
func TestOnRedisClusterMasterKilled(t *testing.T) {
	c := newClusterOnRedisCluster(t, "-heartbeat", faultHeartbeat, "-publish-replicas", "1")
	ctx, r := startFaultRunOf(t, c, "ckill", failoverUsers, failoverLimit)
	r.book.lossy = true
	r.pub.replicas = 1
	r.acrossFault(ctx, "redis-cluster master SIGKILL", 1, r.slowClosed(), func() {
		old := c.rc.KillMaster(streamKey(r.users[0]))
		old.Restart() // back as a replica of the node that took over
		c.rc.WaitStable()
	})
}

// TestOnRedisClusterReshard: followed users' slots move, with their keys,
// to another master while the producers publish (clients see ASK, then
// MOVED); then a fourth master joins and takes other users' slots.
// Nothing fails, so nothing may be lost.
func TestOnRedisClusterReshard(t *testing.T) {
	c := newClusterOnRedisCluster(t, "-heartbeat", faultHeartbeat)
	ctx, r := startFaultRunOf(t, c, "reshard", failoverUsers, failoverLimit)
	const moved = 12
	slow := r.slowClosed()
	r.acrossFault(ctx, "redis-cluster live reshard", 0, slow, func() {
		masters := c.rc.Masters()
		for i, u := range r.users[:moved] {
			from := c.rc.MasterOf(streamKey(u))
			to := masters[i%len(masters)]
			if to == from {
				to = masters[(i+1)%len(masters)]
			}
			c.rc.MoveSlot(r.slot(u), to)
		}
	})
	r.acrossFault(ctx, "redis-cluster fourth master", 0, slow, func() {
		added := c.rc.AddMaster()
		for _, u := range r.users[moved : 2*moved] {
			c.rc.MoveSlot(r.slot(u), added)
		}
	})
}

// slot is the Cluster slot of user's stream.
func (r *faultRun) slot(user string) int {
	r.t.Helper()
	v, err := redistest.Do(r.c.rc.Masters()[0].Addr(), "CLUSTER", "KEYSLOT", streamKey(user))
	n, ok := v.(int64)
	if err != nil || !ok {
		r.t.Fatalf("CLUSTER KEYSLOT %s: %v %v", streamKey(user), v, err)
	}
	return int(n)
}

// waitToldOfLoss waits, up to 10 s, until every stream that lacks an
// entry Redis lost after an instance read it has had its gap: the
// instance that read it may record the loss (a noticed-lost marker) after
// the entries that follow, and the other instance reads the marker, and
// tells its streams, only then.
func (r *faultRun) waitToldOfLoss(ctx context.Context) {
	r.t.Helper()
	if !r.book.lossy {
		return
	}
	tr, err := readTruth(ctx, r.c.rdb, r.users)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.book.waitDelivered(ctx, r.streams, tr); err != nil {
		r.t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	quiet := func(string, ...any) {}
	var o outcome
	if poll(wctx, func() bool { o = r.book.verify(tr, r.streams, quiet); return o.missedGapless == 0 }) == nil && o.lostStreams > 0 {
		r.t.Logf("the %d streams lacking a lost entry had their gap within %v of their last entry", o.lostStreams, time.Since(start).Round(time.Millisecond))
	}
}
