package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/noticed/noticed/internal/redisstore"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/sse"
)

const (
	// followChunk is how many users are subscribed before waiting for them
	// all to be followed, so that a slow Redis is not handed every Follow
	// at once (each has its own deadline in the hub).
	followChunk = 5000
	// followLimit bounds following one chunk; drainLimit, waiting for the
	// events sent to arrive after the publisher stops.
	followLimit = 60 * time.Second
	drainLimit  = 10 * time.Second
	// keyChunk bounds one pipeline when seeding or deleting keys.
	keyChunk = 1000
)

// followMode runs the follow measurement once per user count and reports.
func followMode(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	level := slog.LevelError
	if cfg.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	where := "a redis-server of its own per run"
	if cfg.redisURL != "" {
		where = "the Redis given with -redis, keys under " + cfg.prefix
	}
	fmt.Fprintf(stdout, "noticed-bench -mode follow: %d events/s to random followed users, %v measured after %v of warm-up; %s; %d CPUs; load average %s\n",
		cfg.rate, cfg.duration, cfg.warmup, where, runtime.NumCPU(), loadAverage())

	var rs []result
	for _, n := range cfg.users {
		r, version, err := followRun(ctx, cfg, n, log, stderr)
		if err != nil {
			return fmt.Errorf("%d followed users: %w", n, err)
		}
		if len(rs) == 0 {
			fmt.Fprintf(stdout, "Redis %s\n\n", version)
		}
		rs = append(rs, r)
	}
	fmt.Fprint(stdout, tableHead)
	for _, r := range rs {
		writeRow(stdout, r)
	}
	fmt.Fprintln(stdout)
	for _, r := range rs {
		writeCommands(stdout, r)
	}
	if !writeCheck(stdout, rs) {
		return errFailed
	}
	return nil
}

// followRun follows n users, publishes to them for the warm-up and the
// measured window, and returns what it saw and the Redis version.
func followRun(ctx context.Context, cfg config, n int, log *slog.Logger, progress io.Writer) (result, string, error) {
	r := result{users: n}
	url := cfg.redisURL
	if url == "" {
		srv, err := startRedis(ctx)
		if err != nil {
			return r, "", err
		}
		defer srv.close()
		url = srv.url()
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return r, "", fmt.Errorf("-redis: %w", err)
	}
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	pub := redis.NewClient(opt)
	defer pub.Close()
	version := redisVersion(ctx, pub)

	// Users are named per run, so runs sharing one Redis share no stream.
	users := make([]string, n)
	keys := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("bench-%d-%d", n, i)
		keys[i] = cfg.prefix + "{" + users[i] + "}"
	}
	if cfg.redisURL != "" {
		defer deleteKeys(pub, keys)
	}
	if cfg.seed {
		if err := seed(ctx, pub, keys); err != nil {
			return r, "", err
		}
	}

	store, err := redisstore.New(ctx, redisstore.Options{URL: url, Prefix: cfg.prefix, Logger: log})
	if err != nil {
		return r, "", err
	}
	defer store.Close()
	hub := routing.New(store, sse.AppendEntry, routing.Options{Logger: log})
	go hub.Run()
	defer hub.Close()

	rec := &recorder{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(done)
		wg.Wait()
	}()

	fmt.Fprintf(progress, "%d users: following...", n)
	start := time.Now()
	for i := 0; i < n; i += followChunk {
		conns := make([]*routing.Conn, 0, followChunk)
		for _, u := range users[i:min(i+followChunk, n)] {
			c, err := hub.Subscribe(u)
			if err != nil {
				return r, "", fmt.Errorf("subscribe %s: %w", u, err)
			}
			conns = append(conns, c)
		}
		fctx, cancel := context.WithTimeout(ctx, followLimit)
		for _, c := range conns {
			if _, err := c.Start(fctx); err != nil {
				cancel()
				return r, "", fmt.Errorf("following %s: %w", c.User(), err)
			}
			wg.Go(func() { rec.drain(c, done) })
		}
		cancel()
	}
	r.followTime = time.Since(start)
	fmt.Fprintf(progress, " %.1fs; warming up...", r.followTime.Seconds())

	p := &publisher{rdb: pub, keys: keys, rate: cfg.rate}
	r.sent, err = p.run(ctx, cfg.warmup)
	if err != nil {
		return r, "", fmt.Errorf("publishing: %w", err)
	}
	waitReceived(ctx, rec, r.sent)

	fmt.Fprintf(progress, " measuring...")
	before, err := readStats(ctx, pub)
	if err != nil {
		return r, "", err
	}
	start = time.Now()
	rec.windowStart.Store(start.UnixNano())
	r.measured, err = p.run(ctx, cfg.duration)
	r.sent += r.measured
	if err != nil {
		return r, "", fmt.Errorf("publishing: %w", err)
	}
	waitReceived(ctx, rec, r.sent)
	r.window = time.Since(start)
	after, err := readStats(ctx, pub)
	if err != nil {
		return r, "", err
	}
	r.redis = after.since(before)
	fmt.Fprintf(progress, " done\n")

	r.received = rec.received()
	r.dups, r.kicked, r.bad = rec.dups.Load(), rec.kicked.Load(), rec.bad.Load()
	rec.mu.Lock()
	r.lat = rec.lat
	rec.mu.Unlock()
	return r, version, nil
}

// waitReceived waits until want distinct events have arrived, or
// drainLimit has passed: the shortfall is then reported as lost.
func waitReceived(ctx context.Context, rec *recorder, want int64) {
	deadline := time.Now().Add(drainLimit)
	for rec.received() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// seed gives every stream one entry, as users with history have. It is
// added before the stream is followed, so no subscriber receives it.
func seed(ctx context.Context, rdb *redis.Client, keys []string) error {
	for i := 0; i < len(keys); i += keyChunk {
		pipe := rdb.Pipeline()
		for _, k := range keys[i:min(i+keyChunk, len(keys))] {
			pipe.Do(ctx, "XADD", k, "MAXLEN", "~", 1000, "*", "data", "seed")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("seeding streams: %w", err)
		}
	}
	return nil
}

// deleteKeys removes the run's own streams from a Redis it did not start;
// nothing else there is touched.
func deleteKeys(rdb *redis.Client, keys []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < len(keys); i += keyChunk {
		pipe := rdb.Pipeline()
		for _, k := range keys[i:min(i+keyChunk, len(keys))] {
			pipe.Del(ctx, k)
		}
		_, _ = pipe.Exec(ctx)
	}
}

// loadAverage is the 1, 5 and 15 minute load average, where Linux says it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
