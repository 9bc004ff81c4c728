package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

type config struct {
	mode       string
	rates      []float64 // events per second; one run each
	duration   time.Duration
	warmup     time.Duration
	redisURL   string // with -url: the server's Redis
	prefix     string
	cpuProfile string

	targets     []string // "noticed", "nchan", "centrifugo", "floor"; one run each
	url         string   // a server already running: nothing is started
	serverPIDs  []int
	jwtSecret   string
	streams     []int // one run each
	perUser     int
	publish     string // "xadd" or "post"
	postConns   int
	postBatch   int
	pairs       int // rounds of the targets, alternating their order
	settle      time.Duration
	inFlight    int
	openTimeout time.Duration
	drain       time.Duration
	behind      int
	churn       float64 // streams closed and reopened per second; <0 auto
	sample      time.Duration
	procs       int // 0 auto
	sources     int // 0 auto
	csv         string
	timeout     time.Duration // 0 auto
	noticedBin  string
	nchanConf   string
	centrifugo  string // its binary; "" found on PATH or in $GOPATH/bin
	serverProcs int    // 0: the server's own default

	worker bool
	floor  string // -floor ADDR: serve the floor there (see floor.go)
}

const usage = `noticed-bench measures noticed under load, and Nchan beside it.

Usage:
  noticed-bench -mode load  [-target noticed,nchan] [-streams 10000] [-rate 5000] [-publish xadd|post] [-csv file]
  noticed-bench -mode storm [-target noticed,nchan] [-streams 10000] [-behind 10]   (-rate unused)
  noticed-bench -mode soak  [-target noticed,nchan] [-streams 10000] [-rate 1000] [-duration 10m] [-churn 100]

Modes load, storm and soak open real event streams over loopback TCP, C per
user (-per-user), each with a signed token, and publish events stamped with
their send time, through XADD or POST /notice. Each run starts a redis-server
and the target of its own: noticed (built from ./cmd/noticed), Nchan
(nginx with this module's nchan.conf) or Centrifugo (load mode; uni_sse
streams on personal channels, published through its HTTP API), unless -url
names one already running.

  load   opens the streams (and times it), measures the server's memory with
         them idle, then publishes at -rate for -duration after -warmup and
         reports sent, received, lost, duplicated and misrouted events,
         latency percentiles, delivered events/s, server CPU and memory per
         stream, and Redis CPU per event. -rate 0: open and measure only.
  storm  drops every stream at once, publishes -behind events to each user,
         brings every stream back at once with Last-Event-ID, and reports the
         time until all have caught up, and any loss or duplicate.
  soak   publishes at -rate for -duration while -churn streams a second close
         and reopen, samples the server's RSS, goroutines and open files every
         -sample, and says whether they stayed flat.

Comma lists (-target, -streams, -rate) run every combination, one
run at a time; -csv appends one row per run (scripts/plots.sh draws them).
More streams than one process may hold (-procs) go to worker processes.

Exit status: 0 when every run opened every stream and lost, duplicated and
misrouted nothing (a noticed soak must also stay flat); 1 otherwise; 2 for
bad flags.

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
	// A worker process, started by another noticed-bench to hold some of
	// its streams (see worker.go); not a flag users give, so not listed.
	if len(args) == 1 && args[0] == "-worker" {
		cfg.worker = true
		return cfg, nil
	}
	// The floor server, started by another noticed-bench (-target floor).
	if len(args) == 2 && args[0] == "-floor" {
		cfg.floor = args[1]
		return cfg, nil
	}
	var rates, targets, streams, pids string
	fs.StringVar(&cfg.mode, "mode", "load", "what to measure: load, storm or soak")
	fs.StringVar(&rates, "rate", "2000", "events per second; a comma list runs each")
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "measured time per run, after the warm-up (soak: 10m unless given)")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "time publishing at -rate before measuring")
	fs.StringVar(&cfg.redisURL, "redis", "", "with -url: the server's Redis, for XADD and Redis CPU")
	fs.StringVar(&cfg.prefix, "stream-prefix", "", `stream key prefix`)
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write this process's CPU profile to `file`")

	fs.StringVar(&targets, "target", "noticed", "servers to measure, comma separated: noticed, nchan, centrifugo, floor (a bare in-memory Go server, load mode only)")
	fs.StringVar(&cfg.url, "url", "", "measure the server already running here (loopback only; -target says which kind) instead of starting one")
	fs.StringVar(&pids, "server-pid", "", "with -url: the server's process ids, comma separated (children included), for its memory and CPU")
	fs.StringVar(&cfg.jwtSecret, "jwt-secret", "", "with -url: the noticed server's HMAC secret (default $NOTICED_JWT_SECRET)")
	fs.StringVar(&streams, "streams", "1000", "open streams, comma separated; one run each")
	fs.IntVar(&cfg.perUser, "per-user", 1, "streams per user (C); users = streams / C")
	fs.StringVar(&cfg.publish, "publish", "xadd", "how events are published to noticed: xadd (to Redis) or post (POST /notice); Nchan is always sent POSTs")
	fs.IntVar(&cfg.postConns, "post-conns", 16, "concurrent keep-alive connections publishing by POST")
	fs.IntVar(&cfg.pairs, "pairs", 1, "rounds of every -target, the order reversed every other round; with more than 1, the summary gives each ratio as its median and range over the rounds")
	fs.IntVar(&cfg.postBatch, "post-batch", 1, `events per POST /notice to noticed (more than 1: one "events" batch body per request)`)
	fs.DurationVar(&cfg.settle, "settle", 3*time.Second, "wait after start-up and after opening, before measuring memory")
	fs.IntVar(&cfg.inFlight, "in-flight", 500, "connects under way at once, opening or reconnecting (0: no bound)")
	fs.DurationVar(&cfg.openTimeout, "open-timeout", 2*time.Minute, "longest wait for every stream to open")
	fs.DurationVar(&cfg.drain, "drain", 15*time.Second, "longest wait for events still in flight after publishing stops")
	fs.IntVar(&cfg.behind, "behind", 10, "storm: events each user misses while its streams are away")
	fs.Float64Var(&cfg.churn, "churn", -1, "soak: streams closed and reopened per second; -1: 1% of the streams")
	fs.DurationVar(&cfg.sample, "sample", 5*time.Second, "soak: how often the server is sampled")
	fs.IntVar(&cfg.procs, "procs", 0, fmt.Sprintf("processes holding the streams (default: one per %d)", maxStreamsPerProcess))
	fs.IntVar(&cfg.sources, "sources", 0, fmt.Sprintf("source addresses 127.0.0.1..127.0.0.N (default: one per %d streams)", streamsPerSource))
	fs.StringVar(&cfg.csv, "csv", "", "append one row per run to this CSV `file`")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "hard limit on the whole invocation (default: from the runs asked for)")
	fs.StringVar(&cfg.noticedBin, "noticed-bin", "", "noticed binary to run (default: go build ./cmd/noticed)")
	fs.IntVar(&cfg.serverProcs, "server-procs", 0, "cores a started server runs on at once: GOMAXPROCS for noticed and Centrifugo, worker_processes for Nchan (0: their defaults, every core and nchan.conf's 2)")
	fs.StringVar(&cfg.nchanConf, "nchan-conf", "", "Nchan config (default: nchan.conf, built into this tool)")
	fs.StringVar(&cfg.centrifugo, "centrifugo-bin", "", "Centrifugo binary (default: centrifugo on PATH, or in $(go env GOPATH)/bin; scripts/bench-deps.sh installs it)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var err error
	if cfg.rates, err = parseFloats("-rate", rates); err != nil {
		return config{}, err
	}
	if cfg.duration <= 0 || cfg.warmup < 0 {
		return config{}, errors.New("-duration must be above 0 and -warmup not below 0")
	}
	switch cfg.mode {
	case "load", "storm", "soak":
	default:
		return config{}, fmt.Errorf("-mode %q: want load, storm or soak", cfg.mode)
	}

	if cfg.mode == "soak" && !given["duration"] {
		cfg.duration = 10 * time.Minute
	}
	if cfg.prefix == "" {
		cfg.prefix = "notice:"
	}
	if cfg.streams, err = parseCounts("-streams", streams, 1_000_000); err != nil {
		return config{}, err
	}
	for t := range strings.SplitSeq(targets, ",") {
		t = strings.TrimSpace(t)
		if k, how, ok := strings.Cut(t, "/"); ok {
			if k != "noticed" || (how != "xadd" && how != "post" && how != "batch") {
				return config{}, fmt.Errorf("-target %q: only noticed takes a way to publish: noticed/xadd, noticed/post or noticed/batch", t)
			}
		} else if t != "noticed" && t != "nchan" && t != "centrifugo" && t != "floor" {
			return config{}, fmt.Errorf("-target %q: want noticed, nchan, centrifugo or floor (noticed/xadd, noticed/post, noticed/batch for one way to publish)", t)
		}
		if t == "floor" && cfg.mode != "load" {
			return config{}, errors.New("-target floor keeps no history: it goes with -mode load only")
		}
		if t == "centrifugo" && cfg.mode != "load" {
			// Its uni_sse streams recover through cf_connect's offsets,
			// not the Last-Event-ID this tool's reconnects send.
			return config{}, errors.New("-target centrifugo goes with -mode load only")
		}
		if !slices.Contains(cfg.targets, t) {
			cfg.targets = append(cfg.targets, t)
		}
	}
	for _, r := range cfg.rates {
		if r == 0 && cfg.mode == "soak" {
			return config{}, errors.New("-rate 0: soak needs events (0, open only, is for -mode load)")
		}
	}
	if cfg.mode == "storm" {
		// What is published while the streams are away goes unpaced.
		cfg.rates = []float64{0}
	}
	if cfg.perUser < 1 {
		return config{}, errors.New("-per-user must be at least 1")
	}
	for _, n := range cfg.streams {
		if n%cfg.perUser != 0 {
			return config{}, fmt.Errorf("-streams %d is not a multiple of -per-user %d", n, cfg.perUser)
		}
	}
	if cfg.publish != "xadd" && cfg.publish != "post" {
		return config{}, fmt.Errorf("-publish %q: want xadd or post", cfg.publish)
	}
	if cfg.serverProcs < 0 || cfg.serverProcs > 64 {
		return config{}, errors.New("-server-procs: 0 (the server's default) to 64")
	}
	if cfg.postConns < 1 || cfg.inFlight < 0 || cfg.procs < 0 || cfg.sources < 0 || cfg.sources > 254 {
		return config{}, errors.New("-post-conns must be at least 1; -in-flight, -procs and -sources not negative; -sources at most 254")
	}
	if cfg.pairs < 1 || cfg.pairs > 100 {
		return config{}, errors.New("-pairs: 1 to 100")
	}
	if cfg.postBatch < 1 || cfg.postBatch > 1000 {
		return config{}, errors.New("-post-batch: 1 to 1000 (noticed's -max-users-per-publish)")
	}
	if cfg.behind < 1 {
		return config{}, errors.New("-behind must be at least 1")
	}
	if cfg.sample < 100*time.Millisecond || cfg.settle < 0 || cfg.openTimeout <= 0 || cfg.drain <= 0 {
		return config{}, errors.New("-sample must be at least 100ms, -settle not negative, -open-timeout and -drain above 0")
	}
	if cfg.url != "" {
		if err := checkLoopbackURL(cfg.url); err != nil {
			return config{}, err
		}
		cfg.url = strings.TrimRight(cfg.url, "/")
		if len(cfg.targets) != 1 || cfg.targets[0] == "floor" || cfg.targets[0] == "centrifugo" {
			return config{}, errors.New("-url: give one -target, noticed or nchan, the kind of server running there")
		}
		if k, how := targetKind(cfg, cfg.targets[0]); k == "noticed" {
			if cfg.jwtSecret == "" {
				cfg.jwtSecret = os.Getenv("NOTICED_JWT_SECRET")
			}
			if cfg.jwtSecret == "" {
				return config{}, errors.New("-url with noticed: give -jwt-secret (or $NOTICED_JWT_SECRET), the server's, to sign tokens")
			}
			if how.publish == "xadd" && cfg.redisURL == "" {
				return config{}, errors.New("-url with -publish xadd: give -redis, the server's Redis URL")
			}
		}
		if pids != "" {
			counts, err := parseCounts("-server-pid", pids, 1<<22)
			if err != nil {
				return config{}, err
			}
			cfg.serverPIDs = counts
		}
		if cfg.serverProcs != 0 {
			return config{}, errors.New("-server-procs goes with a server this tool starts, not with -url")
		}
	} else if pids != "" || cfg.jwtSecret != "" || cfg.redisURL != "" {
		return config{}, errors.New("-server-pid, -jwt-secret and -redis go with -url; without it each run starts its own")
	}
	return cfg, nil
}

// checkLoopbackURL refuses anything but http:// to a loopback address:
// this tool opens thousands of connections and must not do so by accident
// to a server elsewhere.
func checkLoopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("-url %q: want http://host:port of a server on this machine", s)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: loopback addresses only (127.0.0.0/8, ::1, localhost)", s)
	}
	return nil
}

func parseCounts(name, s string, limit int) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(strings.ReplaceAll(f, "_", ""))
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive count", name, f)
		}
		if n > limit {
			return nil, fmt.Errorf("%s: %d is over %d", name, n, limit)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFloats(name, s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(strings.ReplaceAll(f, "_", ""))
		n, err := strconv.ParseFloat(f, 64)
		if err != nil || n < 0 || n > 10_000_000 {
			return nil, fmt.Errorf("%s: %q is not a rate (0 to 10,000,000)", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// publishing is how a run's events are published: "xadd" or "post", and
// the events in one POST.
type publishing struct {
	publish string
	batch   int
}

// targetKind splits a -target entry into the server it starts and how
// noticed is published to: "noticed" follows -publish and -post-batch,
// "noticed/xadd" and "noticed/post" (one event per request) fix it, and
// "noticed/batch" posts -post-batch events per request (100 when it is
// 1), so that one invocation can hold noticed published each way beside
// the peers. The peers are always sent one event per POST.
func targetKind(cfg config, t string) (string, publishing) {
	kind, how, _ := strings.Cut(t, "/")
	if kind != "noticed" {
		return kind, publishing{"post", 1}
	}
	switch how {
	case "xadd":
		return kind, publishing{"xadd", 1}
	case "post":
		return kind, publishing{"post", 1}
	case "batch":
		if cfg.postBatch > 1 {
			return kind, publishing{"post", cfg.postBatch}
		}
		return kind, publishing{"post", 100}
	}
	return kind, publishing{cfg.publish, cfg.postBatch}
}
