package sse

import (
	"testing"
	"time"
)

func TestHeartbeatDue(t *testing.T) {
	var b heartbeat
	b.every = 10 * time.Second
	if !b.due() {
		t.Fatal("a stream that wrote nothing: got no ping, want one")
	}
	b.markWrote()
	if b.due() {
		t.Fatal("a stream that wrote since the last tick: got a ping, want none")
	}
	if !b.due() {
		t.Fatal("the tick after a spared one, with no write: got no ping, want one")
	}
	// A ping is flushed like any write, then declared not to be one.
	b.markWrote()
	b.pinged()
	if !b.due() {
		t.Fatal("the tick after a ping, with no write: got no ping, want one")
	}
}

func TestHeartbeatFirstWithinOneInterval(t *testing.T) {
	b := heartbeat{every: 10 * time.Second}
	for range 1000 {
		if got := b.first(); got < b.every/10 || got >= b.every {
			t.Fatalf("first tick after %v, want within [%v, %v)", got, b.every/10, b.every)
		}
	}
}
