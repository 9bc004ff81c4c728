package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/sse"
)

// deliverRate is the pace of BenchmarkDeliver's producer: steady, as
// producers are, and low enough for two shared cores at every user count,
// so that the cost per event is compared at one load.
const deliverRate = 2000

// BenchmarkDeliver is what an event costs Redis, and how long it takes to
// reach its stream, while n users are followed through the hub (issue 3's
// bound: Redis CPU per event at 50,000 users within 1.5× of that at
// 1,000). Every user has one entry and is followed by one in-process
// stream (no sockets, so n is not capped by open files); then one op is
// one XADD, stamped with its send time, from a producer's own connection
// to a random followed user, at deliverRate a second, so ns/op is the pace
// and the figures to read are the reported ones: Redis CPU per event (INFO
// cpu over the loop and the drain after it) and the latency from just
// before the XADD to the frame's arrival on the stream's channel. Every
// event must arrive once.
//
//	go test -run '^$' -bench Deliver -benchtime 20s ./internal/redisstore
func BenchmarkDeliver(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) { benchDeliver(b, n) })
	}
}

func benchDeliver(b *testing.B, n int) {
	srv := redistest.Start(b)
	s := newStore(b, Options{URL: srv.URL(), Logger: quiet})
	hub := routing.New(s, sse.AppendEntry, routing.Options{Logger: quiet})
	go hub.Run()
	b.Cleanup(hub.Close)
	raw := rawClient(b, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	users := make([]string, n)
	keys := make([]string, n)
	for i := 0; i < n; i += 1000 {
		pipe := raw.Pipeline()
		for j := i; j < min(i+1000, n); j++ {
			users[j] = "deliver-" + strconv.Itoa(j)
			keys[j] = s.key(users[j])
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: keys[j], Values: []any{"data", "seed"}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}

	rec := &deliveries{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(done)
		wg.Wait()
	}()
	// Subscribed a chunk at a time, then waited for, so that the hub's
	// follows go out in batches as when many streams open together.
	for i := 0; i < n; i += 5000 {
		conns := make([]*routing.Conn, 0, 5000)
		for _, u := range users[i:min(i+5000, n)] {
			c, err := hub.Subscribe(u)
			if err != nil {
				b.Fatalf("subscribe %s: %v", u, err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			if _, err := c.Start(ctx); err != nil {
				b.Fatalf("follow %s: %v", c.User(), err)
			}
			wg.Go(func() { rec.drain(c, done) })
		}
	}

	// A warm-up, so that the first measured events meet a hub and a Redis
	// already running at the pace.
	publish := func(i int) {
		if err := raw.XAdd(ctx, &redis.XAddArgs{
			Stream: keys[rand.IntN(n)], MaxLen: 1000, Approx: true,
			Values: []any{"data", strconv.FormatInt(time.Now().UnixNano(), 10)},
		}).Err(); err != nil {
			b.Fatalf("XADD %d: %v", i, err)
		}
	}
	var sent int64
	for range deliverRate / 4 {
		sent++
		publish(int(sent))
	}
	waitFor(b, "the warm-up's events", func() bool { return rec.received.Load() >= sent })

	cpu := -redisCPUTime(b, raw)
	rec.from.Store(time.Now().UnixNano())
	start := time.Now()
	measured := 0
	for b.Loop() {
		if wait := time.Until(start.Add(time.Duration(measured) * time.Second / deliverRate)); wait > 0 {
			time.Sleep(wait)
		}
		measured++
		sent++
		publish(int(sent))
	}
	waitFor(b, "every event", func() bool { return rec.received.Load() >= sent })
	cpu += redisCPUTime(b, raw)

	if lost, dup, kicked := sent-rec.received.Load(), rec.dups.Load(), rec.kicked.Load(); lost != 0 || dup != 0 || kicked != 0 {
		b.Fatalf("of %d events: %d lost, %d duplicated, %d streams dropped as slow", sent, lost, dup, kicked)
	}
	rec.mu.Lock()
	lat := rec.lat
	rec.mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(measured), "redis-cpu-ns/event")
	b.ReportMetric(percentileMs(lat, 0.50), "p50-ms")
	b.ReportMetric(percentileMs(lat, 0.99), "p99-ms")
	b.ReportMetric(float64(measured)/time.Since(start).Seconds(), "events/s")
}

// deliveries counts what the streams receive. Events are told apart by
// their send time: those sent before from are the warm-up, counted for
// loss but not for latency.
type deliveries struct {
	from     atomic.Int64 // unix ns
	received atomic.Int64 // distinct
	dups     atomic.Int64
	kicked   atomic.Int64

	mu  sync.Mutex
	lat []time.Duration
}

// drain receives c's frames until done is closed or the hub drops c as
// slow, as a stream's handler would.
func (d *deliveries) drain(c *routing.Conn, done <-chan struct{}) {
	seen := map[notice.ID]bool{}
	for {
		select {
		case f := <-c.Frames():
			now := time.Now().UnixNano()
			if seen[f.ID] {
				d.dups.Add(1)
				continue
			}
			seen[f.ID] = true
			d.received.Add(1)
			if sent, ok := sendTime(f.Bytes); ok && sent >= d.from.Load() && d.from.Load() > 0 {
				d.mu.Lock()
				d.lat = append(d.lat, time.Duration(now-sent))
				d.mu.Unlock()
			}
		case <-c.Kicked():
			d.kicked.Add(1)
			return
		case <-done:
			return
		}
	}
}

// sendTime reads the producer's stamp (unix ns) from a frame's data line.
func sendTime(frame []byte) (int64, bool) {
	_, rest, ok := bytes.Cut(frame, []byte("\ndata: "))
	if !ok {
		return 0, false
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	ns, err := strconv.ParseInt(string(line), 10, 64)
	return ns, err == nil
}

// percentileMs is the nearest-rank percentile of sorted, in milliseconds.
func percentileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(max(int(p*float64(len(sorted))+0.5)-1, 0), len(sorted)-1)
	return sorted[i].Seconds() * 1000
}
