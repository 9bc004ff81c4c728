package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
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
	"github.com/noticed/noticed/internal/routing/storetest"
)

// BenchmarkFollow follows n users at once, one goroutine each, as the hub
// does when n streams of n new users open together. One op is all n
// follows; follows/s is n per op's time. Every user has one entry, as
// users with history do, so each Follow also finds an id.
func BenchmarkFollow(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) { benchFollow(b, n) })
	}
}

func benchFollow(b *testing.B, n int) {
	srv := redistest.Start(b)
	s := newStore(b, Options{URL: srv.URL(), Logger: quiet})
	s.SetNotifier(storetest.NewRecorder())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	raw := rawClient(b, srv)
	b.ReportAllocs()
	var redisCPU, ownCPU time.Duration
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		users := make([]string, n)
		pipe := raw.Pipeline()
		for i := range users {
			users[i] = fmt.Sprintf("bench-%d-%d", round, i)
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.key(users[i]), Values: []any{"data", "x"}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		start := make(chan struct{})
		var ready, done sync.WaitGroup
		var failed atomic.Int64
		var firstErr atomic.Value
		for _, u := range users {
			ready.Add(1)
			done.Go(func() {
				ready.Done()
				<-start
				id, err := s.Follow(ctx, u)
				if err == nil && id.IsZero() {
					err = errors.New("no newest id")
				}
				if err != nil && failed.Add(1) == 1 {
					firstErr.Store(err)
				}
			})
		}
		ready.Wait()
		redisCPU -= redisCPUTime(b, raw)
		ownCPU -= processCPUTime(b)
		b.StartTimer()
		close(start)
		done.Wait()
		b.StopTimer()
		ownCPU += processCPUTime(b)
		redisCPU += redisCPUTime(b, raw)
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d of %d follows failed, the first with: %v", n, len(users), firstErr.Load())
		}
		// Leave Redis as it was, so that rounds do not add up.
		for _, u := range users {
			done.Go(func() {
				if err := s.Unfollow(ctx, u); err != nil {
					b.Error(err)
				}
			})
		}
		done.Wait()
		waitFor(b, "unsubscribe confirmations", func() bool {
			return s.only().pendingCount() == 0
		})
		b.StartTimer()
	}
	follows := float64(n) * float64(b.N)
	b.ReportMetric(follows/b.Elapsed().Seconds(), "follows/s")
	b.ReportMetric(float64(redisCPU.Nanoseconds())/follows, "redis-cpu-ns/follow")
	b.ReportMetric(float64(ownCPU.Nanoseconds())/follows, "go-cpu-ns/follow")
}

// BenchmarkReadBatch is the hub's read of changed users: one Read of 256
// cursors, each finding one new entry of the size and shape Append writes.
// One op is the whole Read; ns/entry and allocs/entry divide it by the
// entries returned.
func BenchmarkReadBatch(b *testing.B) {
	const users = 256
	srv := redistest.Start(b)
	s := newStore(b, Options{URL: srv.URL(), Logger: quiet})
	ctx := testCtx(b)
	cursors := make([]routing.Cursor, users)
	for i := range cursors {
		u := fmt.Sprintf("read-%d", i)
		ids, err := s.Append(ctx, []routing.Message{
			{User: u, Event: "order.shipped", Data: `{"order":1041,"status":"shipped","carrier":"DHL","eta":"2026-12-01"}`},
			{User: u, Event: "order.shipped", Data: `{"order":1042,"status":"shipped","carrier":"UPS","eta":"2026-12-02"}`},
		})
		if err != nil {
			b.Fatal(err)
		}
		cursors[i] = routing.Cursor{User: u, After: ids[0], Count: 256}
	}
	var got []routing.Batch
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if got, err = s.Read(ctx, cursors); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	for i, g := range got {
		if len(g.Entries) != 1 || g.Entries[0].Event != "order.shipped" {
			b.Fatalf("user %d: read %v, want its one new entry", i, g.Entries)
		}
	}
	entries := float64(b.N) * users
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/entries, "ns/entry")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/entries, "allocs/entry")
}

// quiet drops the store's logs, which would break up the benchmark table.
var quiet = slog.New(slog.DiscardHandler)

// redisCPUTime is the CPU time Redis has used, from INFO cpu.
func redisCPUTime(b *testing.B, raw *redis.Client) time.Duration {
	info, err := raw.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, line := range strings.Split(info, "\r\n") {
		name, value, _ := strings.Cut(line, ":")
		if name == "used_cpu_sys" || name == "used_cpu_user" {
			sec, err := strconv.ParseFloat(value, 64)
			if err != nil {
				b.Fatalf("INFO cpu: %q: %v", line, err)
			}
			total += time.Duration(sec * float64(time.Second))
		}
	}
	return total
}

// processCPUTime is the CPU time this process has used: the store's and
// the benchmark's own goroutines, which stand for the hub's.
func processCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
