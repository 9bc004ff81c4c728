package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hostileDialer connects like a client on the Internet rather than on
// loopback: 1460-byte segments and a small receive buffer. Over loopback's
// 64 KiB segments the kernel lets about 3 MB through to a client that
// never reads before noticed's writes block, so a thousand of them would
// take gigabytes of the machine's socket memory before testing anything.
var hostileDialer = net.Dialer{
	Timeout: 5 * time.Second,
	Control: func(network, address string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			if err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096); err == nil {
				err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 1460)
			}
		})
		if cerr != nil {
			return cerr
		}
		return err
	},
}

// streamRequest is a GET /notice as an EventSource sends it.
func streamRequest(addr, token, lastEventID string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET /notice?token=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n", url.QueryEscape(token), addr)
	if lastEventID != "" {
		fmt.Fprintf(&b, "Last-Event-ID: %s\r\n", lastEventID)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// TestNeverReadingClients: a thousand streams whose clients never read a
// byte sit on one instance beside well-behaved ones, and their users get
// events faster than they take them. Each of the thousand is closed as
// slow and counted; memory stays bounded meanwhile; the well-behaved
// streams get every event of theirs, once, without being dropped; and the
// instance is back to what it held before.
func TestNeverReadingClients(t *testing.T) {
	const hostile, hostileUsers, calmUsers, calmPerUser = 1000, 20, 10, 2
	const bigEvent, queueLen = 8 << 10, 64
	c := newCluster(t, "-heartbeat", "1s", "-queue-len", strconv.Itoa(queueLen))
	target := c.inst[0]
	base := "http://" + target.addr
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	start := time.Now()
	calm := usersNamed("calm", calmUsers)
	var streams []*eventSource
	for _, u := range calm {
		for range calmPerUser {
			streams = append(streams, c.subscribeAt(base, u))
		}
	}
	for _, es := range streams {
		if err := es.waitOpen(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	before := target.mustUsage(t)

	// The thousand: each sends its request and never reads.
	rude := usersNamed("rude", hostileUsers)
	conns := make([]net.Conn, 0, hostile)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for i := range hostile {
		nc, err := hostileDialer.DialContext(ctx, "tcp", target.addr)
		if err != nil {
			t.Fatalf("hostile client %d: %v", i, err)
		}
		conns = append(conns, nc)
		if _, err := nc.Write(streamRequest(target.addr, c.token(rude[i%hostileUsers]), "")); err != nil {
			t.Fatal(err)
		}
	}
	if err := poll(ctx, func() bool { return target.streamsOpen(t) == len(streams)+hostile }); err != nil {
		t.Fatalf("%d streams open; want %d: %v", target.streamsOpen(t), len(streams)+hostile, err)
	}
	open := target.mustUsage(t)
	dialled := time.Now()

	// The calm users' events, by both ways, all along.
	book := newLedger()
	pub := c.newPublisher(book)
	seed := uint64(time.Now().UnixNano())
	stopCalm := pub.keepPublishing(seed, calm, 2, 20*time.Millisecond)
	// The rude users' events, 8 KiB each, to all twenty at once from two
	// producers, until every rude stream is closed. Fast, so that each
	// falls -queue-len events behind before noticed's write deadline (10 s)
	// closes it: that would close it too, but uncounted.
	big, _ := json.Marshal(map[string]any{"users": rude, "event": "bulk", "data": strings.Repeat("x", bigEvent)})
	var batches atomic.Int64
	rudeCtx, stopRude := context.WithCancel(ctx)
	var producers sync.WaitGroup
	var rudeErr atomic.Value
	for range 2 {
		producers.Go(func() {
			for rudeCtx.Err() == nil && batches.Load() < 500 {
				if err := postRaw(rudeCtx, c.client, base+"/notice", c.pub, big); err != nil {
					if rudeCtx.Err() == nil {
						rudeErr.Store(err)
					}
					return
				}
				batches.Add(1)
			}
		})
	}
	// Sampled every 100 ms meanwhile.
	peak := open
	var slowestScrape time.Duration // how long /metrics took to answer, at worst
	var last usage
	err := poll(ctx, func() bool {
		asked := time.Now()
		u, err := target.usage()
		if err != nil {
			return false
		}
		slowestScrape = max(slowestScrape, time.Since(asked))
		peak.goroutines = max(peak.goroutines, u.goroutines)
		peak.heap = max(peak.heap, u.heap)
		peak.rss = max(peak.rss, u.rss)
		last = u
		return u.open == len(streams) || rudeErr.Load() != nil
	})
	stopRude()
	producers.Wait()
	stopCalm()
	published := time.Now()
	if e, _ := rudeErr.Load().(error); e != nil {
		t.Fatalf("publishing to the rude users: %v", e)
	}
	if err != nil {
		t.Fatalf("rude streams never all closed: %v, %d closed as slow, after %d events to each rude user (%v)", last, last.slow-before.slow, batches.Load(), err)
	}

	tr, err := readTruth(ctx, c.rdb, calm)
	if err != nil {
		t.Fatal(err)
	}
	if err := book.waitDelivered(ctx, streams, tr); err != nil {
		t.Error(err)
	}
	o := book.verify(tr, streams, reporter(t, ""))
	if n := reconnects(streams); n != 0 {
		t.Errorf("%d well-behaved streams were dropped and reconnected; want none", n)
	}
	after := settleUsage(t, ctx, target, before)
	if err := poll(ctx, func() bool {
		ch, _, err := subscriptions(ctx, c.rdb, "rude-*")
		u, uerr := target.usage()
		return err == nil && uerr == nil && ch == 0 && u.followed == before.followed
	}); err != nil {
		ch, _, _ := subscriptions(ctx, c.rdb, "rude-*")
		t.Errorf("after the rude streams closed: %v, %d Redis subscriptions to rude users; want %d followed, none", target.mustUsage(t), ch, before.followed)
	}
	slow := after.slow - before.slow
	if slow != hostile {
		t.Errorf("%d streams counted as closed slow; want exactly the %d that never read (one closed by the write deadline before it fell -queue-len behind is not counted)", slow, hostile)
	}
	// Bounded: a stream may fall -queue-len events behind, no more, and
	// what it is behind on is the hub's one copy of each of its user's
	// events, not a copy per stream (that would be up to -queue-len × 8 KiB
	// for each of the thousand, 512 MiB). A quarter of that leaves room for
	// the garbage of reading the events and for the collector's pace.
	limit := float64(hostile * queueLen * bigEvent / 4)
	if grown := peak.heap - before.heap; grown > limit {
		t.Errorf("heap grew by %s while %d clients did not read (each was sent %s); want at most %s: the streams behind should share the hub's frames, not copy them",
			mib(grown), hostile, mib(float64(batches.Load()*bigEvent)), mib(limit))
	}
	t.Logf("before: %v; with %d rude streams open: %v; peak: %v; after: %v", before, hostile, open, peak, after)
	t.Logf("rude streams open in %v, all closed %v after publishing began; /metrics answered within %v at worst meanwhile",
		dialled.Sub(start).Round(time.Millisecond), published.Sub(dialled).Round(time.Millisecond), slowestScrape.Round(time.Millisecond))
	fmt.Printf("e2e never-reading: %d streams that never read, %d events of 8 KiB sent to each; closed as slow %d/%d; well-behaved: %v, dropped %d; goroutines %d→%d→%d, heap %s→%s→%s, rss %s→%s→%s\n",
		hostile, batches.Load(), slow, hostile, o, reconnects(streams),
		before.goroutines, peak.goroutines, after.goroutines, mib(before.heap), mib(peak.heap), mib(after.heap),
		mib(before.rss), mib(peak.rss), mib(after.rss))
	if !o.clean() {
		t.Errorf("well-behaved streams beside the rude ones: %v; want every event once", o)
	}
}

// postRaw POSTs body and wants 200.
func postRaw(ctx context.Context, client *http.Client, target, token string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /notice: %s %s", resp.Status, answer)
	}
	return nil
}

// settleUsage waits for the instance to give back what it took since
// before: goroutines back to the count before (or fewer), and returns the
// usage then.
func settleUsage(t *testing.T, ctx context.Context, in *instance, before usage) usage {
	t.Helper()
	var u usage
	err := poll(ctx, func() bool {
		var err error
		u, err = in.usage()
		return err == nil && u.goroutines <= before.goroutines
	})
	if err != nil {
		t.Errorf("goroutines %d, %d before: not back to where they were (%v)", u.goroutines, before.goroutines, err)
	}
	return u
}

// TestStreamChurn: clients open streams and drop them in a tight loop, at
// every stage (before the answer, after the headers, mid-replay, reset
// instead of closed). The instance is not exhausted (every one is
// answered 200, a well-behaved stream beside them gets all its events),
// and nothing is left behind: streams, followed users, goroutines and the
// Redis subscriptions all return to what they were.
func TestStreamChurn(t *testing.T) {
	const workers, opens, churnUsers = 16, 1500, 100
	c := newCluster(t, "-heartbeat", "1s")
	target := c.inst[0]
	base := "http://" + target.addr
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	users := usersNamed("churn", churnUsers)

	// Whatever is made once (the Pub/Sub connection, pools) exists
	// before the baseline: one stream opened and closed first.
	warm, err := churnOnce(ctx, target.addr, c.token(users[0]), "", 2)
	if err != nil || warm != http.StatusOK {
		t.Fatalf("first stream: %d %v", warm, err)
	}
	steady := c.subscribeAt(base, "steady")
	if err := steady.waitOpen(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var before usage
	if err := poll(ctx, func() bool {
		before = target.mustUsage(t)
		ch, _, err := subscriptions(ctx, c.rdb, "churn-*")
		return err == nil && ch == 0 && before.open == 1 && before.followed == 1
	}); err != nil {
		t.Fatalf("instance not settled before the churn: %v", before)
	}
	subsBefore, patsBefore, err := subscriptions(ctx, c.rdb, "*")
	if err != nil {
		t.Fatal(err)
	}

	book := newLedger()
	pub := c.newPublisher(book)
	seed := uint64(time.Now().UnixNano())
	stopSteady := pub.keepPublishing(seed, []string{"steady"}, 2, 40*time.Millisecond)
	stopChurn := pub.keepPublishing(seed+1, users, 2, 5*time.Millisecond)

	var next atomic.Int64
	var mu sync.Mutex
	statuses := map[int]int{}
	var failures []error
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(100+w)))
		wg.Go(func() {
			for i := next.Add(1); i <= opens; i = next.Add(1) {
				u := users[rng.IntN(len(users))]
				from := ""
				if rng.IntN(2) == 0 {
					from = lastAcked(book, u)
				}
				status, err := churnOnce(ctx, target.addr, c.token(u), from, rng.IntN(4))
				mu.Lock()
				statuses[status]++
				if err != nil && len(failures) < 5 {
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	peak := sampleUsage(target, before, &wg)
	took := time.Since(start)
	stopSteady()
	stopChurn()
	for _, err := range failures {
		t.Errorf("churn: %v", err)
	}

	// Back to the baseline.
	var after usage
	var subs, pats int
	err = poll(ctx, func() bool {
		var err error
		if after, err = target.usage(); err != nil {
			return false
		}
		if subs, pats, err = subscriptions(ctx, c.rdb, "*"); err != nil {
			return false
		}
		return after.open == 1 && after.followed == 1 && subs == subsBefore && pats == patsBefore && after.goroutines <= before.goroutines
	})
	if err != nil {
		t.Errorf("after the churn: %v, Redis channels %d, patterns %d; before: %v, channels %d, patterns %d; want all back",
			after, subs, pats, before, subsBefore, patsBefore)
	}

	tr, err := readTruth(ctx, c.rdb, []string{"steady"})
	if err != nil {
		t.Fatal(err)
	}
	if err := book.waitDelivered(ctx, []*eventSource{steady}, tr); err != nil {
		t.Error(err)
	}
	o := book.verify(tr, []*eventSource{steady}, reporter(t, ""))
	if n := reconnects([]*eventSource{steady}); n != 0 {
		t.Errorf("the steady stream reconnected %d times; want none", n)
	}
	// 0: dropped before the answer, not waited for.
	if statuses[http.StatusOK]+statuses[0] != opens {
		t.Errorf("answers to the churning clients: %v; want 200 to all %d", statuses, opens)
	}
	t.Logf("%d opens in %v by %d clients; before: %v; peak: %v; after: %v", opens, took.Round(time.Millisecond), workers, before, peak, after)
	fmt.Printf("e2e stream-churn: %d streams opened and dropped by %d clients in %v (%.0f/s), answered %v; steady stream: %v; streams %d→%d→%d, followed %d→%d→%d, Redis subscriptions %d→%d, goroutines %d→%d→%d, heap %s→%s→%s\n",
		opens, workers, took.Round(time.Millisecond), float64(opens)/took.Seconds(), statuses, o,
		before.open, peak.open, after.open, before.followed, peak.followed, after.followed, subsBefore, subs,
		before.goroutines, peak.goroutines, after.goroutines, mib(before.heap), mib(peak.heap), mib(after.heap))
	if !o.clean() {
		t.Errorf("steady stream beside the churn: %v; want every event once", o)
	}
}

// sampleUsage reads the instance's usage every 100 ms until wg is done,
// and returns the highest of each figure (from before on).
func sampleUsage(in *instance, before usage, wg *sync.WaitGroup) usage {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	peak := before
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if u, err := in.usage(); err == nil {
			peak.goroutines = max(peak.goroutines, u.goroutines)
			peak.heap = max(peak.heap, u.heap)
			peak.rss = max(peak.rss, u.rss)
			peak.followed = max(peak.followed, u.followed)
			peak.open = max(peak.open, u.open)
		}
		select {
		case <-done:
			return peak
		case <-tick.C:
		}
	}
}

// lastAcked is the id of an event acknowledged for user, "" when none.
func lastAcked(book *ledger, user string) string {
	book.mu.Lock()
	defer book.mu.Unlock()
	for i := len(book.all) - 1; i >= 0; i-- {
		if a := book.all[i]; a.user == user && a.id != "" {
			return a.id
		}
	}
	return ""
}

// churnOnce opens one stream and drops it at a stage picked by how:
// 0 right after sending the request; 1 once the headers are in; 2 once an
// id has arrived (the replay or the first position); 3 once the headers
// are in, with a reset instead of a close. It returns the status answered,
// 0 when it did not wait for one.
func churnOnce(ctx context.Context, addr, token, lastEventID string, how int) (int, error) {
	nc, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := nc.Write(streamRequest(addr, token, lastEventID)); err != nil {
		return 0, err
	}
	if how == 0 {
		return 0, nil
	}
	r := bufio.NewReader(nc)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return 0, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, fmt.Errorf("answered %s: %s", resp.Status, body)
	}
	switch how {
	case 2:
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "id:") {
				break
			}
		}
		if err := sc.Err(); err != nil {
			return resp.StatusCode, fmt.Errorf("reading the stream: %w", err)
		}
	case 3:
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	return resp.StatusCode, nil
}
