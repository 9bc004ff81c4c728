package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for noticed-bench -worker, so
// that crews of worker processes can be tested.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-worker" {
		if err := workerMain(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// sseServer is a small event-stream server standing in for noticed or
// Nchan: one list of events per user, ids 1, 2, 3..., a replay after
// Last-Event-ID, then live events.
type sseServer struct {
	t   *testing.T
	srv *httptest.Server
	// raw answers close-delimited on a hijacked connection, as noticed
	// may; otherwise net/http's chunked encoding.
	raw bool
	// refuse answers this many opens with 503 first.
	refuse atomic.Int64

	mu      sync.Mutex
	events  map[string][]string
	changed chan struct{}
	lastIDs []string // the Last-Event-ID of every request that had one
	opens   int
}

func newSSEServer(t *testing.T, raw bool) *sseServer {
	s := &sseServer{t: t, raw: raw, events: map[string][]string{}, changed: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	t.Cleanup(s.srv.CloseClientConnections)
	return s
}

func (s *sseServer) host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// publish appends data to user's list, for every open stream of the user.
func (s *sseServer) publish(user, data string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events[user] = append(s.events[user], data)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *sseServer) serve(w http.ResponseWriter, r *http.Request) {
	user, ok := strings.CutPrefix(r.URL.Path, "/sub/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if s.refuse.Add(-1) >= 0 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"instance full"}`, http.StatusServiceUnavailable)
		return
	}
	next := 0
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.Atoi(id)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		next = n
	}
	s.mu.Lock()
	s.opens++
	if r.Header.Get("Last-Event-ID") != "" {
		s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
	}
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var write func(string) error
	if s.raw {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			s.t.Error(err)
			return
		}
		defer conn.Close()
		// The client closing is seen by reading.
		go func() {
			_, _ = io.Copy(io.Discard, conn)
			cancel()
		}()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
		write = func(text string) error {
			buf.WriteString(text)
			return buf.Flush()
		}
	} else {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		write = func(text string) error {
			if _, err := w.Write([]byte(text)); err != nil {
				return err
			}
			return http.NewResponseController(w).Flush()
		}
	}
	if write("retry: 1000\n\n") != nil {
		return
	}
	for {
		s.mu.Lock()
		list, changed := s.events[user], s.changed
		s.mu.Unlock()
		for ; next < len(list); next++ {
			if write(fmt.Sprintf("id: %d\ndata: %s\n\n", next+1, list[next])) != nil {
				return
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

func testSpec(s *sseServer, streams, users int) fleetSpec {
	return fleetSpec{Kind: "nchan", Host: s.host(), Lo: 0, Hi: streams, Users: users, UserPrefix: "t-", InFlight: 4}
}

// publishEach sends every user one event of phase, with sequence seq.
func publishEach(s *sseServer, users int, seq int64, phase byte) {
	for u := range users {
		name := userName("t-", u)
		s.publish(name, string(appendPayload(nil, name, seq, time.Now().UnixNano(), phase)))
	}
}

func waitFleet(t *testing.T, f fleetAPI, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := f.status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Received >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d events, want %d", st.Received, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openAll(t *testing.T, f fleetAPI, want int) {
	t.Helper()
	op, err := f.open(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if op.Opened != int64(want) {
		t.Fatalf("opened %d of %d streams (failures %v)", op.Opened, want, op.Failures)
	}
}

func TestFleetReceives(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("raw=%v", raw), func(t *testing.T) {
			t.Parallel()
			s := newSSEServer(t, raw)
			f, err := newFleet(testSpec(s, 6, 3))
			if err != nil {
				t.Fatal(err)
			}
			openAll(t, f, 6)
			for seq := int64(1); seq <= 5; seq++ {
				publishEach(s, 3, seq, phaseMeasured)
			}
			waitFleet(t, f, 30)
			rep, err := f.finish(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Received != 30 || rep.Dups != 0 || rep.Misrouted != 0 || rep.Bad != 0 || rep.Latency.N != 30 {
				t.Errorf("got received %d, dups %d, misrouted %d, bad %d, latencies %d; want 30, 0, 0, 0, 30",
					rep.Received, rep.Dups, rep.Misrouted, rep.Bad, rep.Latency.N)
			}
		})
	}
}

func TestFleetCountsWhatIsWrong(t *testing.T) {
	t.Parallel()
	s := newSSEServer(t, false)
	f, err := newFleet(testSpec(s, 2, 2))
	if err != nil {
		t.Fatal(err)
	}
	openAll(t, f, 2)
	now := time.Now().UnixNano()
	s.publish("t-0", string(appendPayload(nil, "t-0", 1, now, phaseWarmup)))
	s.publish("t-0", string(appendPayload(nil, "t-0", 1, now, phaseWarmup))) // the same event again
	s.publish("t-0", string(appendPayload(nil, "t-1", 1, now, phaseWarmup))) // another user's
	s.publish("t-1", "not a payload")
	s.publish("t-1", string(appendPayload(nil, "t-1", 2, now, phaseWarmup)))
	waitFleet(t, f, 2)
	rep, err := f.finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := [4]int64{rep.Received, rep.Dups, rep.Misrouted, rep.Bad}
	if want := [4]int64{2, 1, 1, 1}; got != want {
		t.Errorf("received, dups, misrouted, bad = %v, want %v", got, want)
	}
	if rep.Latency.N != 0 {
		t.Errorf("warm-up events gave %d latencies, want none", rep.Latency.N)
	}
}

func TestFleetStorm(t *testing.T) {
	t.Parallel()
	s := newSSEServer(t, true)
	f, err := newFleet(testSpec(s, 8, 4))
	if err != nil {
		t.Fatal(err)
	}
	openAll(t, f, 8)
	publishEach(s, 4, 1, phaseWarmup)
	waitFleet(t, f, 8)
	if err := f.drop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.status(context.Background()); st.Connected != 0 {
		t.Fatalf("%d streams still connected after drop", st.Connected)
	}
	for seq := int64(2); seq <= 4; seq++ {
		publishEach(s, 4, seq, phaseBehind)
	}
	st, err := f.reconnect(context.Background(), 4, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Reconnected != 8 || st.CaughtUp != 8 || st.AllCaughtUp <= 0 || st.CatchUp.N != 8 {
		t.Errorf("storm: %d back, %d caught up (all in %v, %d timings), want 8, 8", st.Reconnected, st.CaughtUp, st.AllCaughtUp, st.CatchUp.N)
	}
	rep, err := f.finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Received != 32 || rep.Dups != 0 {
		t.Errorf("received %d with %d dups, want 32 and 0", rep.Received, rep.Dups)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lastIDs) != 8 {
		t.Fatalf("%d reconnects sent Last-Event-ID, want 8", len(s.lastIDs))
	}
	for _, id := range s.lastIDs {
		if id != "1" {
			t.Errorf("came back with Last-Event-ID %q, want 1", id)
		}
	}
}

func TestFleetChurnLosesNothing(t *testing.T) {
	t.Parallel()
	s := newSSEServer(t, false)
	f, err := newFleet(testSpec(s, 10, 5))
	if err != nil {
		t.Fatal(err)
	}
	openAll(t, f, 10)
	if err := f.churn(context.Background(), 500); err != nil {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= 40; seq++ {
		publishEach(s, 5, seq, phaseMeasured)
		time.Sleep(2 * time.Millisecond)
	}
	if err := f.churn(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	waitFleet(t, f, 400)
	rep, err := f.finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Received != 400 || rep.Dups != 0 || rep.Churned == 0 {
		t.Errorf("received %d, dups %d, churned %d; want 400, 0, some", rep.Received, rep.Dups, rep.Churned)
	}
}

func TestFleetRetriesRefusedOpens(t *testing.T) {
	t.Parallel()
	s := newSSEServer(t, false)
	s.refuse.Store(3)
	f, err := newFleet(testSpec(s, 3, 3))
	if err != nil {
		t.Fatal(err)
	}
	openAll(t, f, 3)
	rep, err := f.finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Failures[`status 503 {"error":"instance full"}`]; n != 3 {
		t.Errorf("failures %v, want 3 × status 503", rep.Failures)
	}
}

func TestCrewOfWorkers(t *testing.T) {
	t.Parallel()
	s := newSSEServer(t, false)
	c, err := startCrew(testSpec(s, 12, 4), 12, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 3 {
		t.Fatalf("%d fleets, want 3 workers", len(c))
	}
	op, err := c.open(context.Background(), 10*time.Second)
	if err != nil || op.Opened != 12 {
		t.Fatalf("opened %d of 12: %v", op.Opened, err)
	}
	publishEach(s, 4, 1, phaseMeasured)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := c.received(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d of 12", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	rep, err := c.finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Streams != 12 || rep.Received != 12 || rep.Latency.N != 12 {
		t.Errorf("streams %d, received %d, latencies %d; want 12 each", rep.Streams, rep.Received, rep.Latency.N)
	}
}
