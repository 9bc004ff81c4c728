package redisstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
)

// BenchmarkTopology compares one redis-server with a Redis Cluster of three
// masters (no replicas: replication would cost the same on both), each
// with 10,000 followed users, one stream each, on one noticed hub: the
// time to follow them all, then events/s through XADD, keyspace
// notification, read and fan-out, with Redis CPU per event on each master
// and this process's CPU per event (hub, store and the producer together).
// One op is a pipeline of 1,000 XADDs to random users; the producer runs
// at most 5,000 events ahead of delivery.
//
//	go test -run '^$' -bench BenchmarkTopology -benchtime 50x ./internal/redisstore
func BenchmarkTopology(b *testing.B) {
	const users = 10000
	b.Run("single", func(b *testing.B) {
		srv := redistest.Start(b)
		benchTopology(b, srv.URL(), []string{srv.Addr()}, users)
	})
	b.Run("cluster-3", func(b *testing.B) {
		c := redistest.StartClusterOf(b, 3, 0)
		var masters []string
		for _, m := range c.Masters() {
			masters = append(masters, m.Addr())
		}
		benchTopology(b, c.URL(), masters, users)
	})
}

func benchTopology(b *testing.B, url string, masters []string, users int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := newStore(b, Options{URL: url, Logger: quiet})
	hub := routing.New(s, encode, routing.Options{QueueLen: 4096, Logger: quiet})
	go hub.Run()
	b.Cleanup(hub.Close)

	var producer redis.UniversalClient
	if strings.HasPrefix(url, "redis+cluster://") {
		opt, _ := redis.ParseClusterURL(strings.Replace(url, "redis+cluster", "redis", 1))
		producer = redis.NewClusterClient(opt)
	} else {
		opt, _ := redis.ParseURL(url)
		producer = redis.NewClient(opt)
	}
	b.Cleanup(func() { _ = producer.Close() })

	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("topo-%d-%d", time.Now().UnixNano(), i)
	}
	var received atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, u := range names {
		c, err := hub.Subscribe(u)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			if _, err := c.Start(ctx); err != nil {
				b.Error(err)
			}
		})
		go func() {
			for {
				select {
				case <-c.Frames():
					received.Add(1)
				case <-hub.Closing():
					return
				}
			}
		}()
	}
	wg.Wait()
	follow := time.Since(start)

	before := nodeCPU(b, masters)
	selfBefore := selfCPU()
	var sent int64
	b.ResetTimer()
	for b.Loop() {
		pipe := producer.Pipeline()
		for range 1000 {
			pipe.Do(ctx, "XADD", DefaultPrefix+"{"+names[rand.N(users)]+"}", "MAXLEN", "~", 1000, "*", "data", "x")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		sent += 1000
		for received.Load() < sent-5000 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	for received.Load() < sent {
		if ctx.Err() != nil {
			b.Fatalf("%d of %d events delivered", received.Load(), sent)
		}
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := b.Elapsed()
	b.StopTimer()
	after := nodeCPU(b, masters)
	self := selfCPU() - selfBefore

	b.ReportMetric(follow.Seconds(), "follow-10k-s")
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(self.Microseconds())/float64(sent), "self-µs/event")
	var perNode []string
	var total float64
	for i, addr := range masters {
		us := (after[i] - before[i]) * 1e6 / float64(sent)
		total += us
		perNode = append(perNode, strconv.FormatFloat(us, 'f', 1, 64))
		_ = addr
	}
	sort.Strings(perNode)
	b.ReportMetric(total, "redis-µs/event")
	b.Logf("%d users followed in %v; %d events, %.0f events/s; Redis CPU per event per master (µs): %s (sum %.1f); this process %.1f µs/event",
		users, follow.Round(time.Millisecond), sent, float64(sent)/elapsed.Seconds(), strings.Join(perNode, ", "), total, float64(self.Microseconds())/float64(sent))
}

// nodeCPU is used_cpu_sys + used_cpu_user of each server, in seconds.
func nodeCPU(b *testing.B, addrs []string) []float64 {
	out := make([]float64, len(addrs))
	for i, a := range addrs {
		v, err := redistest.Do(a, "INFO", "cpu")
		if err != nil {
			b.Fatal(err)
		}
		text, _ := v.(string)
		for line := range strings.SplitSeq(text, "\r\n") {
			name, value, _ := strings.Cut(line, ":")
			if name == "used_cpu_sys" || name == "used_cpu_user" {
				f, _ := strconv.ParseFloat(value, 64)
				out[i] += f
			}
		}
	}
	return out
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEntryMemory is Redis memory per stream entry as noticed writes
// them: 200 entries on each of 1,000 users (event "order.shipped", a
// 36-byte JSON data), the used_memory delta divided by the entries.
//
//	go test -run '^$' -bench BenchmarkEntryMemory -benchtime 1x ./internal/redisstore
func BenchmarkEntryMemory(b *testing.B) {
	srv := redistest.Start(b)
	s := newStore(b, Options{URL: srv.URL(), Logger: quiet, MaxLen: -1})
	ctx := testCtx(b)
	used := func() float64 {
		v, err := redistest.Do(srv.Addr(), "MEMORY", "STATS")
		if err != nil {
			b.Fatal(err)
		}
		a, _ := v.([]any)
		for i := 0; i+1 < len(a); i += 2 {
			if a[i] == "dataset.bytes" {
				n, _ := a[i+1].(int64)
				return float64(n)
			}
		}
		b.Fatal("MEMORY STATS lacks dataset.bytes")
		return 0
	}
	for b.Loop() {
		before := used()
		for round := range 200 {
			msgs := make([]routing.Message, 1000)
			for u := range msgs {
				msgs[u] = routing.Message{User: fmt.Sprintf("mem-%d", u), Event: "order.shipped",
					Data: fmt.Sprintf(`{"order":%08d,"status":"shipped"}`, round*1000+u)}
			}
			if _, err := s.Append(ctx, msgs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric((used()-before)/200000, "B/entry")
	}
}
