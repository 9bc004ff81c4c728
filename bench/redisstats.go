package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisStats is what Redis says it has spent: CPU seconds of the whole
// process (INFO cpu) and, per command, calls and microseconds
// (INFO commandstats). Keyspace notifications have no entry of their own:
// their cost is inside the command that fired them.
type redisStats struct {
	cpu      float64 // used_cpu_sys + used_cpu_user
	commands map[string]commandStat
}

type commandStat struct {
	calls int64
	usec  int64
}

func readStats(ctx context.Context, rdb *redis.Client) (redisStats, error) {
	text, err := rdb.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		return redisStats{}, fmt.Errorf("INFO cpu commandstats: %w", err)
	}
	st := redisStats{commands: make(map[string]commandStat)}
	var sys, user bool
	for line := range strings.SplitSeq(text, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch {
		case name == "used_cpu_sys" || name == "used_cpu_user":
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return redisStats{}, fmt.Errorf("INFO cpu: %s is %q", name, value)
			}
			st.cpu += v
			sys = sys || name == "used_cpu_sys"
			user = user || name == "used_cpu_user"
		case strings.HasPrefix(name, "cmdstat_"):
			var c commandStat
			for kv := range strings.SplitSeq(value, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "calls":
					c.calls, _ = strconv.ParseInt(v, 10, 64)
				case "usec":
					c.usec, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			st.commands[strings.TrimPrefix(name, "cmdstat_")] = c
		}
	}
	if !sys || !user {
		return redisStats{}, fmt.Errorf("INFO cpu lacks used_cpu_sys or used_cpu_user")
	}
	return st, nil
}

// since returns what was spent between before and st.
func (st redisStats) since(before redisStats) redisStats {
	d := redisStats{cpu: st.cpu - before.cpu, commands: make(map[string]commandStat)}
	for name, c := range st.commands {
		b := before.commands[name]
		if c.calls > b.calls {
			d.commands[name] = commandStat{calls: c.calls - b.calls, usec: c.usec - b.usec}
		}
	}
	return d
}

func redisVersion(ctx context.Context, rdb *redis.Client) string {
	text, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return "unknown"
}
