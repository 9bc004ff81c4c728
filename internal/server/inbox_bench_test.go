package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/inbox"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/redisstore"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/server"
	"github.com/noticed/noticed/internal/sse"
)

// plainStore hides the store's inbox ability: streams then start without
// their read state, as before the inbox.
type plainStore struct{ routing.Store }

// benchServer is noticed on Redis, in process, with read state and
// presence each on or off.
func benchServer(b *testing.B, url string, readState, withPresence bool) string {
	b.Helper()
	rs, err := redisstore.New(context.Background(), redisstore.Options{URL: url, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rs.Close() })
	var store routing.Store = rs
	if !readState {
		store = plainStore{rs}
	}
	log := slog.New(slog.DiscardHandler)
	opts := routing.Options{Logger: log}
	var pres presence.Backend
	if withPresence {
		pres = rs.Presence("")
		tr := presence.NewTracker(pres, presence.Options{Logger: log})
		go tr.Run()
		b.Cleanup(func() { tr.Close(context.Background()) })
		opts.Presence = tr
	}
	hub := routing.New(store, sse.AppendEntry, opts)
	go hub.Run()
	v, err := auth.NewVerifier(auth.Config{Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	h := server.New(server.Config{Verifier: v, Store: store, Presence: pres, Logger: log,
		Streams: sse.NewHandler(hub, store, sse.Options{Logger: log})})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	l := server.Listen(ln, h, server.Limits{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}, log)
	go l.Serve()
	b.Cleanup(func() { hub.Close(); l.Close() })
	return "http://" + l.Addr().String()
}

// redisCost reads Redis's command count and CPU seconds.
func redisCost(b *testing.B, rdb *redis.Client) (calls int64, cpu float64) {
	b.Helper()
	stats, err := rdb.Info(context.Background(), "commandstats", "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(stats, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "cmdstat_") {
			_, rest, _ := strings.Cut(line, "calls=")
			n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
			calls += n
		}
		for _, k := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				cpu += f
			}
		}
	}
	return calls, cpu
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs op b.N times and reports, per op, the CPU of this process
// (noticed and the client), Redis's CPU and commands.
func measure(b *testing.B, rdb *redis.Client, op func(i int)) {
	b.Helper()
	calls0, rcpu0 := redisCost(b, rdb)
	cpu0 := processCPU()
	b.ResetTimer()
	for i := range b.N {
		op(i)
	}
	b.StopTimer()
	// Presence is written behind the streams' back: let it land before
	// counting what Redis did.
	time.Sleep(200 * time.Millisecond)
	calls1, rcpu1 := redisCost(b, rdb)
	cpu1 := processCPU()
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric((rcpu1-rcpu0)*1e6/float64(b.N), "redis-cpu-µs/op")
	b.ReportMetric(float64(calls1-calls0-2)/float64(b.N), "redis-cmds/op") // less the two INFO
}

// inboxUsers gives users a history of 100 entries with a read mark after
// the 90th: a stream's read state then reads back 11 entries.
func inboxUsers(b *testing.B, url string, n int) []string {
	b.Helper()
	rs, err := redisstore.New(context.Background(), redisstore.Options{URL: url, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Close()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		msgs := make([]routing.Message, 100)
		for j := range msgs {
			msgs[j] = routing.Message{User: users[i], Event: "order.shipped", Data: `{"order":1234,"status":"shipped"}`}
		}
		ids, err := rs.Append(context.Background(), msgs[:90])
		if err != nil {
			b.Fatal(err)
		}
		upTo := ids[89]
		if _, err := inbox.Mark(context.Background(), rs, users[i], &upTo, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := rs.Append(context.Background(), msgs[90:]); err != nil {
			b.Fatal(err)
		}
	}
	return users
}

var inboxVariants = []struct {
	name                string
	readState, presence bool
}{
	{"without", false, false},
	{"read-state", true, false},
	{"presence", false, true},
	{"both", true, true},
}

// BenchmarkInboxOpen opens a stream and reads it up to its position block
// (and the read state before it, when on), and keeps it open, as streams
// are: the price of read state and presence per stream opened. The
// streams close after the timer stops; their presence is written before
// Redis's figures are taken.
func BenchmarkInboxOpen(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	users := inboxUsers(b, srv.URL(), 64)
	tokens := make([]string, len(users))
	for i, u := range users {
		tokens[i], _ = auth.Sign(secret, u, time.Hour, nil, "", "")
	}
	for _, v := range inboxVariants {
		b.Run(v.name, func(b *testing.B) {
			base := benchServer(b, srv.URL(), v.readState, v.presence)
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			var open []io.Closer
			defer func() {
				for _, c := range open {
					c.Close()
				}
			}()
			measure(b, rdb, func(i int) {
				resp, err := client.Get(base + "/notice?token=" + tokens[i%len(tokens)])
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("GET /notice: %v %v", resp, err)
				}
				br := bufio.NewReader(resp.Body)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						b.Fatal(err)
					}
					if strings.HasPrefix(line, "id: ") {
						break
					}
				}
				open = append(open, resp.Body)
			})
		})
	}
}

// BenchmarkInboxEvent publishes one event to a user with one open stream
// and waits for it on the stream: read state and presence add nothing to
// this path (a mark is an entry like any other), which this holds them to.
func BenchmarkInboxEvent(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	pub, _ := auth.Sign(secret, "producer", time.Hour, []string{"publish"}, "", "")
	for _, v := range inboxVariants {
		b.Run(v.name, func(b *testing.B) {
			base := benchServer(b, srv.URL(), v.readState, v.presence)
			user := fmt.Sprintf("ev-%s-%d", v.name, time.Now().UnixNano())
			tok, _ := auth.Sign(secret, user, time.Hour, nil, "", "")
			resp, err := http.Get(base + "/notice?token=" + tok)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			r := sse.NewReader(resp.Body)
			events := make(chan string, 16)
			go func() {
				for {
					ev, err := r.Next()
					if err != nil {
						close(events)
						return
					}
					events <- ev.ID
				}
			}()
			body := `{"user":"` + user + `","event":"order.shipped","data":{"order":1234}}`
			client := &http.Client{}
			measure(b, rdb, func(int) {
				req, _ := http.NewRequest(http.MethodPost, base+"/notice", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+pub)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("publish: %v %v", resp, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if _, ok := <-events; !ok {
					b.Fatal("stream ended")
				}
			})
		})
	}
}

var _ = notice.Zero
