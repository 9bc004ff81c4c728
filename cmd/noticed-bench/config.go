package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

type config struct {
	mode       string
	users      []int // followed users, one run each, in the order given
	rate       int   // events per second
	duration   time.Duration
	warmup     time.Duration
	redisURL   string // empty: start a redis-server of our own
	prefix     string
	seed       bool
	cpuProfile string
	verbose    bool
}

const usage = `noticed-bench measures noticed under load.

Usage:
  noticed-bench -mode follow [-users 1000,10000,50000] [-rate 2000] [-duration 20s] [-redis URL]

Mode follow follows N users through the Redis backend (one in-process
subscriber per user, no sockets), XADDs to random followed users at -rate,
and reports Redis CPU per event (INFO cpu) and the latency from XADD to the
subscriber, for each N. It starts its own redis-server unless -redis is
given; a Redis given with -redis gets keyspace notifications turned on
(flags added, none removed) and keeps nothing of the run: only the keys
under the run's own -stream-prefix are written, and they are deleted at the
end.

Exit status: 0 when nothing was lost or doubled and Redis CPU per event at
the largest N is within 1.5x of the smallest; 1 otherwise; 2 for bad flags.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("noticed-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var cfg config
	var users string
	fs.StringVar(&cfg.mode, "mode", "follow", "what to measure: follow")
	fs.StringVar(&users, "users", "1000,10000,50000", "followed users, comma separated; one run each")
	fs.IntVar(&cfg.rate, "rate", 2000, "events per second, spread over random followed users")
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "measured time per run, after the warm-up")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "time publishing at -rate before measuring")
	fs.StringVar(&cfg.redisURL, "redis", "", "Redis URL to use instead of starting redis-server (never flushed)")
	fs.StringVar(&cfg.prefix, "stream-prefix", "", `stream key prefix (default "notice:" on our own Redis, a unique one with -redis)`)
	fs.BoolVar(&cfg.seed, "seed", true, "give every followed user one entry before following, as users with history have")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write this process's CPU profile to `file`")
	fs.BoolVar(&cfg.verbose, "v", false, "log progress and the backend's warnings")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.mode != "follow" {
		return config{}, fmt.Errorf("-mode %q: the only mode is follow", cfg.mode)
	}
	var err error
	if cfg.users, err = parseUsers(users); err != nil {
		return config{}, err
	}
	if cfg.rate <= 0 {
		return config{}, errors.New("-rate must be above 0")
	}
	if cfg.duration <= 0 || cfg.warmup < 0 {
		return config{}, errors.New("-duration must be above 0 and -warmup not below 0")
	}
	if cfg.prefix == "" {
		cfg.prefix = "notice:"
		if cfg.redisURL != "" {
			cfg.prefix = "noticed-bench:" + randomHex(6) + ":"
		}
	}
	return cfg, nil
}

func parseUsers(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-users: %q is not a positive count", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("-users: no count given")
	}
	if slices.Max(out) > 1_000_000 {
		return nil, errors.New("-users: at most 1,000,000 per run")
	}
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
