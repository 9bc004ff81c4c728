package routing_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/noticed/noticed/internal/routing"
)

// benchFanOut appends b.N entries spread over users, each followed by
// perUser streams here, and waits until every stream has every entry of
// its user. ns/op is per appended entry; deliveries/s counts frames
// handed to streams.
func benchFanOut(b *testing.B, users, perUser int) {
	hub, store := newHub(b, routing.Options{QueueLen: 4096})
	names := make([]string, users)
	var received atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for u := range names {
		names[u] = fmt.Sprintf("bench-%d", u)
		for range perUser {
			c := subscribe(b, hub, names[u])
			wg.Go(func() {
				for {
					select {
					case <-c.Frames():
						received.Add(1)
					case <-c.Kicked():
						panic("a benchmark stream fell behind")
					case <-stop:
						return
					}
				}
			})
		}
	}
	msgs := make([]routing.Message, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		msgs = msgs[:0]
		for i := 0; i < 64 && sent < b.N; i++ {
			msgs = append(msgs, routing.Message{User: names[sent%users], Data: `{"n":1}`})
			sent++
		}
		if _, err := store.Append(context.Background(), msgs); err != nil {
			b.Fatal(err)
		}
		// Keep no more than a queue's worth in flight per stream.
		for received.Load() < int64(sent-2048)*int64(perUser) {
			runtime.Gosched()
		}
	}
	want := int64(b.N) * int64(perUser)
	for received.Load() < want {
		runtime.Gosched()
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
}

func BenchmarkFanOut1User1000Streams(b *testing.B) { benchFanOut(b, 1, 1000) }
func BenchmarkFanOut1000Users1Stream(b *testing.B) { benchFanOut(b, 1000, 1) }
