package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestFailoverKill: an instance dies (SIGKILL). Its clients reconnect
// through nginx to the other one with Last-Event-ID and get everything
// published meanwhile, exactly once. Started again, it takes new streams
// with nothing to clean up.
func TestFailoverKill(t *testing.T) {
	const users, perUser = 50, 2
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	names := usersNamed("kill", users)
	streams, err := c.subscribeAll(ctx, names, perUser)
	if err != nil {
		t.Fatal(err)
	}
	split := c.spread(t, users*perUser)
	if err := c.publish(ctx, names, 0, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.waitDelivered(ctx, streams); err != nil {
		t.Fatal(err)
	}

	victim, survivor := c.inst[0], c.inst[1]
	killed := time.Now()
	victim.kill()
	// Published while the victim's clients wait out their retry: delay.
	if err := c.publish(ctx, names, 3, 4); err != nil {
		t.Fatal(err)
	}
	meanwhile := time.Now()
	if err := c.waitDelivered(ctx, streams); err != nil {
		t.Fatal(err)
	}
	moved := checkMoved(t, streams, split[0], killed)
	if got := survivor.streamsOpen(t); got != users*perUser {
		t.Errorf("survivor has %d streams open; want all %d", got, users*perUser)
	}
	// And live events after the move.
	if err := c.publish(ctx, names, 7, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.waitDelivered(ctx, streams); err != nil {
		t.Fatal(err)
	}
	n := c.check(ctx, streams)
	t.Logf("SIGKILL: %d streams moved; publishing meanwhile took %v; %v", len(moved), meanwhile.Sub(killed).Round(time.Millisecond), n)
	fmt.Printf("e2e failover SIGKILL: moved=%d %v post_retries=%d\n", len(moved), n, c.postRetries.Load())
	if !n.clean() {
		t.Errorf("after SIGKILL: %v; want every event once", n)
	}

	t.Run("restarted instance takes new streams", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		victim.start()
		if err := victim.waitReady(ctx); err != nil {
			t.Fatal(err)
		}
		// least_conn sends new streams to the emptier instance: all to it.
		late, err := c.subscribeAll(ctx, usersNamed("late", 20), 1)
		if err != nil {
			t.Fatal(err)
		}
		onVictim := victim.streamsOpen(t)
		if onVictim != len(late) {
			t.Errorf("restarted instance holds %d of %d new streams; want all", onVictim, len(late))
		}
		lateUsers := make([]string, 0, len(late))
		for _, es := range late {
			lateUsers = append(lateUsers, es.user)
		}
		all := append(slices.Clone(streams), late...)
		if err := c.publish(ctx, append(slices.Clone(names), lateUsers...), 9, 2); err != nil {
			t.Fatal(err)
		}
		if err := c.waitDelivered(ctx, all); err != nil {
			t.Fatal(err)
		}
		n := c.check(ctx, all)
		t.Logf("restart: %d of %d new streams on it; %v", onVictim, len(late), n)
		fmt.Printf("e2e restart: restarted_instance_streams=%d %v\n", onVictim, n)
		if !n.clean() {
			t.Errorf("after restart: %v; want every event once", n)
		}
	})
}

// TestFailoverTerm: an instance is stopped (SIGTERM). It tells each
// stream to come back after its own random short delay, so its clients
// reconnect to the other instance spread over time, not in one burst;
// nothing is lost or doubled, and it exits 0.
func TestFailoverTerm(t *testing.T) {
	const users, perUser = 60, 2
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	names := usersNamed("term", users)
	streams, err := c.subscribeAll(ctx, names, perUser)
	if err != nil {
		t.Fatal(err)
	}
	split := c.spread(t, users*perUser)
	if err := c.publish(ctx, names, 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.waitDelivered(ctx, streams); err != nil {
		t.Fatal(err)
	}

	victim := c.inst[0]
	stopped := time.Now()
	exit := victim.terminate()
	if err := c.publish(ctx, names, 2, 4); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exit:
		if err != nil {
			t.Errorf("after SIGTERM: %v; want exit status 0", err)
		}
	case <-ctx.Done():
		t.Fatal("still running long after SIGTERM")
	}
	drained := time.Since(stopped)
	if err := c.waitDelivered(ctx, streams); err != nil {
		t.Fatal(err)
	}
	moved := checkMoved(t, streams, split[0], stopped)

	// The reconnects: spread over the drain's jittered retry, not a burst.
	var at []time.Time
	for _, m := range moved {
		at = append(at, m.requested)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	span := at[len(at)-1].Sub(at[0])
	burst := 0 // most reconnects within any 50 ms
	for i := range at {
		j := i
		for j < len(at) && at[j].Sub(at[i]) < 50*time.Millisecond {
			j++
		}
		burst = max(burst, j-i)
	}
	if span < 500*time.Millisecond || burst > len(at)/3 {
		t.Errorf("%d reconnects over %v, up to %d within 50 ms; want them spread (over ≥500 ms, ≤ a third in any 50 ms)", len(at), span, burst)
	}

	if err := c.publish(ctx, names, 6, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.waitDelivered(ctx, streams); err != nil {
		t.Fatal(err)
	}
	n := c.check(ctx, streams)
	t.Logf("SIGTERM: exit after %v; %d streams moved, reconnects spread over %v, at most %d within 50 ms; %v",
		drained.Round(time.Millisecond), len(moved), span.Round(time.Millisecond), burst, n)
	fmt.Printf("e2e failover SIGTERM: moved=%d reconnect_span=%v max_in_50ms=%d %v post_retries=%d\n",
		len(moved), span.Round(time.Millisecond), burst, n, c.postRetries.Load())
	if !n.clean() {
		t.Errorf("after SIGTERM: %v; want every event once", n)
	}
	if r := c.postRetries.Load(); r > 0 {
		t.Errorf("%d POSTs through nginx failed during a graceful stop; want none", r)
	}
}

// moved is one stream's reconnection after its instance went away.
type moved struct {
	es        *eventSource
	requested time.Time
}

// checkMoved finds the streams that lost their connection after since:
// there must be as many as the lost instance held, each back with one
// new connection that sent, as Last-Event-ID, the id of the last event
// received before the drop.
func checkMoved(t *testing.T, streams []*eventSource, onVictim int, since time.Time) []moved {
	t.Helper()
	var out []moved
	for _, es := range streams {
		events, conns, _ := es.snapshot()
		switch len(conns) {
		case 1:
			continue
		case 2:
		default:
			t.Errorf("stream of %s connected %d times; want at most 2", es.user, len(conns))
			continue
		}
		first, second := conns[0], conns[1]
		if first.droppedAt.Before(since) {
			t.Errorf("stream of %s dropped at %v, before its instance went", es.user, first.droppedAt)
		}
		lastBefore := ""
		if second.firstEvent > 0 {
			lastBefore = events[second.firstEvent-1].ID
		}
		if second.lastEventID != lastBefore || lastBefore == "" {
			t.Errorf("stream of %s reconnected with Last-Event-ID %q; last event received was %q", es.user, second.lastEventID, lastBefore)
		}
		out = append(out, moved{es: es, requested: second.requested})
	}
	if len(out) != onVictim {
		t.Errorf("%d streams reconnected; the lost instance held %d", len(out), onVictim)
	}
	return out
}

// TestRollingRestart: A is stopped and started again, then B, as a
// deploy does. No browser is ever refused (nginx's 502 would make an
// EventSource give up for good), all end up on A, and nothing published
// along the way is lost or doubled.
func TestRollingRestart(t *testing.T) {
	const users, perUser = 40, 2
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	names := usersNamed("roll", users)
	streams, err := c.subscribeAll(ctx, names, perUser)
	if err != nil {
		t.Fatal(err)
	}
	c.spread(t, users*perUser)
	if err := c.publish(ctx, names, 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.waitDelivered(ctx, streams); err != nil {
		t.Fatal(err)
	}
	seq := 2
	for i, in := range c.inst {
		exit := in.terminate()
		if err := c.publish(ctx, names, seq, 2); err != nil {
			t.Fatal(err)
		}
		seq += 2
		if err := <-exit; err != nil {
			t.Fatalf("%s: %v", in.name, err)
		}
		if i == 0 {
			in.start()
			if err := in.waitReady(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.waitDelivered(ctx, streams); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.inst[0].streamsOpen(t); got != users*perUser {
		t.Errorf("A holds %d streams after B stopped; want all %d", got, users*perUser)
	}
	n := c.check(ctx, streams)
	t.Logf("rolling restart: %v", n)
	fmt.Printf("e2e rolling restart: %v post_retries=%d\n", n, c.postRetries.Load())
	if !n.clean() {
		t.Errorf("rolling restart: %v; want every event once", n)
	}
	if r := c.postRetries.Load(); r > 0 {
		t.Errorf("%d POSTs through nginx failed during graceful stops; want none", r)
	}
}
