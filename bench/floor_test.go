package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The floor answers a stream request as noticed does, closely enough for
// the tool to count the stream open, and writes what is published to the
// user's streams, and to no one else's.
func TestFloorServesAStream(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- floorMain(ctx, addr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("floorMain: %v", err)
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the floor never listened: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling for the listener, bounded above
	}
	open := func(user string) *bufio.Reader {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /sub/"+user+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		if head := readUntil(t, br, "retry: 2000\n\n"); head != floorHead {
			t.Errorf("head %q, want %q", head, floorHead)
		}
		return br
	}
	alice, bob := open("alice"), open("bob")
	for _, to := range []string{"bob", "alice"} {
		resp, err := http.Post("http://"+addr+"/pub/"+to, "text/plain", strings.NewReader("for "+to))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish to %s: status %d", to, resp.StatusCode)
		}
	}
	// Each gets its own event first: alice's was published second, so had
	// bob's reached her it would come before it.
	if got := readUntil(t, alice, "\n\n"); got != "data: for alice\n\n" {
		t.Errorf("alice got %q", got)
	}
	if got := readUntil(t, bob, "\n\n"); got != "data: for bob\n\n" {
		t.Errorf("bob got %q", got)
	}
}

// readUntil reads lines from br until what it read ends with end.
func readUntil(t *testing.T, br *bufio.Reader, end string) string {
	t.Helper()
	var got strings.Builder
	for !strings.HasSuffix(got.String(), end) {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got.String(), err)
		}
		got.WriteString(line)
	}
	return got.String()
}

func TestFloorRefusesAnAddressElsewhere(t *testing.T) {
	if err := floorMain(context.Background(), "192.0.2.1:80"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("floorMain on 192.0.2.1: %v, want a refusal naming loopback", err)
	}
}
