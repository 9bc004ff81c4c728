package main

import (
	"strings"
	"testing"
	"time"
)

// lineFunc is a lineSink calling a function.
type lineFunc func([]byte)

func (fn lineFunc) bodyLine(line []byte) { fn(line) }

// parse feeds text to a stream client as the body of a 200, close-delimited,
// bufSize bytes at a time, and returns the fleet's counts and the client.
func parse(_ testing.TB, text string, bufSize int) (*fleet, *streamClient) {
	f := &fleet{failures: map[string]int64{}}
	s := &streamClient{f: f, user: []byte("u1")}
	in := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + text)
	for len(in) > 0 {
		n := min(bufSize, len(in))
		if err := s.resp.feed(in[:n], lineFunc(s.field)); err != nil {
			return f, s
		}
		in = in[n:]
	}
	return f, s
}

func TestStreamParsing(t *testing.T) {
	ok := string(appendPayload(nil, "u1", 1, time.Now().UnixNano(), phaseMeasured))
	ok2 := string(appendPayload(nil, "u1", 2, time.Now().UnixNano(), phaseWarmup))
	tests := []struct {
		name          string
		text          string
		received, bad int64
		gaps          int64
		lastID        string
	}{
		{"LF", "retry: 2000\n\nid: 1-0\n\nid: 1-1\ndata: " + ok + "\n\n", 1, 0, 0, "1-1"},
		{"CRLF", "retry: 2000\r\n\r\nid: 7\r\ndata: " + ok + "\r\n\r\n", 1, 0, 0, "7"},
		{"comments and heartbeats", ": hi\n\n: ping\n\nid: 3\ndata:" + ok + "\n\n", 1, 0, 0, "3"},
		{"id without data is still kept", "id: 5\n\n", 0, 0, 0, "5"},
		{"id with NUL is ignored", "id: 5\n\nid: 6\x00\ndata: " + ok + "\n\n", 1, 0, 0, "5"},
		{"two events", "id: 1\ndata: " + ok + "\n\nid: 2\ndata: " + ok2 + "\n\n", 2, 0, 0, "2"},
		{"unterminated event is not dispatched", "id: 1\ndata: " + ok, 0, 0, 0, "1"},
		{"two data lines are one payload, not ours", "data: u1 1\ndata: 2 m\n\n", 0, 1, 0, ""},
		{"gap", "event: gap\ndata: {\"lastEventId\":\"1-0\"}\n\nid: 2\ndata: " + ok + "\n\n", 1, 0, 1, "2"},
		{"the read state is skipped", "retry: 2000\n\nevent: read\ndata: {\"upTo\":\"0-0\",\"ids\":[],\"unread\":0}\n\nid: 2\ndata: " + ok + "\n\n", 1, 0, 0, "2"},
		{"other event types are not ours", "event: other\ndata: " + ok + "\n\n", 0, 1, 0, ""},
		{"long line", "data: " + strings.Repeat("x", 5000) + "\n\nid: 9\ndata: " + ok + "\n\n", 1, 1, 0, "9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, s := parse(t, tc.text, 64)
			if got := [3]int64{f.received.Load(), f.bad.Load(), f.gaps.Load()}; got != [3]int64{tc.received, tc.bad, tc.gaps} {
				t.Errorf("received, bad, gaps = %v, want %v", got, [3]int64{tc.received, tc.bad, tc.gaps})
			}
			if string(s.lastID) != tc.lastID {
				t.Errorf("last id %q, want %q", s.lastID, tc.lastID)
			}
		})
	}
}

func TestStreamRequest(t *testing.T) {
	f := &fleet{spec: fleetSpec{Host: "127.0.0.1:8080"}}
	s := &streamClient{f: f, target: "/notice?token=abc"}
	want := "GET /notice?token=abc HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
	if got := string(s.request()); got != want {
		t.Errorf("first request:\n%q\nwant\n%q", got, want)
	}
	s.lastID = []byte("1795686067000-3")
	want = strings.Replace(want, "no-cache\r\n", "no-cache\r\nLast-Event-ID: 1795686067000-3\r\n", 1)
	if got := string(s.request()); got != want {
		t.Errorf("reconnecting request:\n%q\nwant\n%q", got, want)
	}
}

func TestSeqSet(t *testing.T) {
	var s seqSet
	nums := []int64{1, 63, 64, 65, 1000, maxSeq}
	for _, n := range nums {
		if s.testAndSet(n) {
			t.Errorf("%d: there before it was added", n)
		}
	}
	for _, n := range nums {
		if !s.testAndSet(n) {
			t.Errorf("%d: not there after it was added", n)
		}
	}
	if s.testAndSet(999) {
		t.Error("999: there though never added")
	}
}

func FuzzStreamParser(f *testing.F) {
	f.Add("retry: 2000\n\nid: 1-0\ndata: u1 1 2 m\n\n")
	f.Add("event: gap\r\ndata: x\r\n\r\n: ping\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		fl, s := parse(t, text, 16)
		if fl.received.Load() > int64(strings.Count(text, "data")) {
			t.Errorf("more events than data lines")
		}
		_ = s.lastID
	})
}
