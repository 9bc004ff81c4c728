package filestore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/filestore"
	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redisstore"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
)

// BenchmarkBackends publishes through each backend as POST /notice does
// (one entry per call, from several producers at once) to users each
// followed by one stream of a hub, and reports, per backend in one run:
// publishes/s and the p99 of a publish call; deliveries/s and the p99 from
// the start of the publish to the frame reaching its stream. Producers
// publish without pause: the rates are each backend's ceiling here, and
// the file's grows with them, as they share its commits. redis-server
// has no persistence here (as redistest starts it); the file is fsynced
// on every commit.
//
//	go test -run '^$' -bench Backends -benchtime 20000x ./internal/filestore
func BenchmarkBackends(b *testing.B) {
	for _, producers := range []int{8, 64} {
		for _, backend := range []string{"memory", "file", "redis"} {
			b.Run(fmt.Sprintf("producers=%d/backend=%s", producers, backend), func(b *testing.B) {
				benchBackend(b, openBackend(b, backend), producers)
			})
		}
	}
}

const benchUsers = 100

func openBackend(b *testing.B, backend string) routing.Store {
	b.Helper()
	var s routing.Store
	switch backend {
	case "memory":
		s = memstore.New(memstore.Options{MaxLen: 1000})
	case "file":
		fs, err := filestore.Open(filestore.Options{Path: filepath.Join(b.TempDir(), "noticed.db"), MaxLen: 1000})
		if err != nil {
			b.Fatal(err)
		}
		s = fs
	case "redis":
		srv := redistest.Start(b)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rs, err := redisstore.New(ctx, redisstore.Options{URL: srv.URL(), Prefix: "notice:", MaxLen: 1000, TTL: -1,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		s = rs
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// rawData is the hub's encoder here: the frame is the entry's data, the
// publish's start in Unix nanoseconds.
func rawData(dst []byte, e notice.Entry) []byte { return append(dst, e.Data...) }

func benchBackend(b *testing.B, store routing.Store, producers int) {
	hub := routing.New(store, rawData, routing.Options{QueueLen: 1 << 16})
	go hub.Run()
	defer hub.Close()

	var received atomic.Int64
	delays := make([][]time.Duration, benchUsers)
	var readers sync.WaitGroup
	stop := make(chan struct{})
	users := make([]string, benchUsers)
	for u := range users {
		users[u] = fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), u)
		c, err := hub.Subscribe(users[u])
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = c.Start(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		readers.Go(func() {
			for {
				select {
				case f := <-c.Frames():
					sent, _ := strconv.ParseInt(string(f.Bytes), 10, 64)
					delays[u] = append(delays[u], time.Duration(time.Now().UnixNano()-sent))
					received.Add(1)
				case <-c.Kicked():
					panic("a benchmark stream fell behind")
				case <-stop:
					return
				}
			}
		})
	}

	calls := make([][]time.Duration, producers)
	var next atomic.Int64
	var publishing sync.WaitGroup
	b.ResetTimer()
	for p := range producers {
		publishing.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				start := time.Now()
				msg := routing.Message{User: users[i%benchUsers], Data: strconv.FormatInt(start.UnixNano(), 10)}
				if _, err := store.Append(context.Background(), []routing.Message{msg}); err != nil {
					panic(err)
				}
				calls[p] = append(calls[p], time.Since(start))
			}
		})
	}
	publishing.Wait()
	published := b.Elapsed()
	for received.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	close(stop)
	readers.Wait()

	b.ReportMetric(float64(b.N)/published.Seconds(), "publishes/s")
	b.ReportMetric(p99(calls), "publish-p99-ms")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(p99(delays), "delivery-p99-ms")
}

func p99(parts [][]time.Duration) float64 {
	all := slices.Concat(parts...)
	if len(all) == 0 {
		return 0
	}
	slices.Sort(all)
	return float64(all[len(all)*99/100]) / float64(time.Millisecond)
}
