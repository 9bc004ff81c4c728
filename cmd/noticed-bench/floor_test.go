package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/redistest"
)

// The floor answers a stream request as noticed does, closely enough for
// the tool to count the stream open, and lets the connection go when the
// client leaves.
func TestFloorServesAStream(t *testing.T) {
	port, err := redistest.FreePort()
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
	var c net.Conn
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the floor never listened: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling for the listener, bounded above
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /notice?token=x HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var got strings.Builder
	for !strings.HasSuffix(got.String(), "retry: 2000\n\n") {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got.String(), err)
		}
		got.WriteString(line)
	}
	if got.String() != floorHead {
		t.Errorf("head %q, want %q", got.String(), floorHead)
	}
}

func TestFloorRefusesAnAddressElsewhere(t *testing.T) {
	if err := floorMain(context.Background(), "192.0.2.1:80"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("floorMain on 192.0.2.1: %v, want a refusal naming loopback", err)
	}
}
