package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/noticed/noticed/internal/filestore"
	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/redisstore"
	"github.com/noticed/noticed/internal/retry"
	"github.com/noticed/noticed/internal/routing"
)

func backendName(c *Config) string {
	switch {
	case c.RedisURL != "":
		return "redis"
	case c.DataPath != "":
		return "file"
	}
	return "memory"
}

func newStore(ctx context.Context, c *Config, log *slog.Logger) (routing.Store, error) {
	if c.RedisURL == "" && c.DataPath != "" {
		s, err := filestore.Open(filestore.Options{Path: c.DataPath, MaxLen: int(c.StreamMaxLen), TTL: c.StreamTTL, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("-data: %w", err)
		}
		log.Info("embedded backend in a file: one instance only, history kept across restarts", "data", c.DataPath)
		return s, nil
	}
	if c.RedisURL == "" {
		log.Warn("no -redis given: using the embedded in-memory backend: one instance only, nothing kept across restarts (-data PATH keeps it in a file)")
		return memstore.New(memstore.Options{MaxLen: int(c.StreamMaxLen), TTL: c.StreamTTL}), nil
	}
	ttl := c.StreamTTL
	if ttl == 0 {
		ttl = -1 // the flag's 0 is "never"; redisstore takes negative for it
	}
	opts := redisstore.Options{URL: c.RedisURL, Prefix: c.StreamPrefix, MaxLen: c.StreamMaxLen, TTL: ttl, Logger: log,
		Replicas: c.PublishReplicas, ReplicasTimeout: c.PublishReplicasTimeout}
	// An instance may start before Redis does: keep trying while Redis is
	// only unreachable; fail at once on anything else (a bad URL, a refused
	// CONFIG SET).
	backoff := retry.New(100*time.Millisecond, 5*time.Second)
	for {
		startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := redisstore.New(startCtx, opts)
		cancel()
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, routing.ErrUnavailable) || ctx.Err() != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		wait := backoff.Next()
		log.Warn("redis does not answer yet; retrying", "err", err, "retry_in", wait)
		if !retry.Sleep(wait, ctx.Done()) {
			return nil, fmt.Errorf("redis: %w", err)
		}
	}
}

// redisLog sends go-redis' own messages (reconnect attempts) to slog.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.Warn("redis client: " + fmt.Sprintf(format, v...))
}

// maxConns is -max-conns, or, when 0, what the open-files limit allows
// with room left for Redis connections, listeners and logs.
func maxConns(flagValue int) int {
	if flagValue > 0 {
		return flagValue
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 0
	}
	return max(int(lim.Cur)-256, 64)
}
