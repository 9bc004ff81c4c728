package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"
)

// streamsPerSource keeps one source address's connections to one server
// within the ~28,000 ephemeral ports Linux gives it by default.
const streamsPerSource = 25000

// runResult is one run: a mode, a target, a number of streams and a rate.
type runResult struct {
	Mode, Target, Publish string
	Spec                  string // the -target entry: noticed/xadd, nchan, ...
	Round                 int    // 0 to -pairs - 1
	PostBatch             int    // events per POST (noticed's "events" batch past 1)
	Streams, PerUser      int
	Rate                  float64
	Duration              time.Duration
	Procs                 int
	InFlight              int
	Err                   error

	Opened       int64
	OpenTime     time.Duration // from the first dial until every stream is open
	OpenFailures map[string]int64

	HaveServer  bool
	Before      procSample // server before any stream
	Idle        procSample // with every stream open and idle
	HaveRedis   bool
	RedisVer    string
	ServerVer   string
	ServerCPU   time.Duration          // in the window
	RedisCPU    time.Duration          // in the window
	RedisCmds   map[string]commandStat // in the window
	Window      time.Duration          // measured publishing and its drain
	WindowSent  int64                  // events the server took in the window
	Sent        int64                  // events the server took in the whole run
	PubFailed   int64
	PubFirstErr string
	PubRate     float64 // events/s achieved in the window
	Expected    int64   // deliveries due: Sent × streams per user
	Report      fleetReport

	Behind int
	Storm  stormReport

	Soak *soakResult
}

func (r *runResult) lost() int64 { return max(r.Expected-r.Report.Received, 0) }

// ok is what the exit status says: nothing lost, doubled, misrouted or
// unreadable, every stream open, every event published; and for noticed,
// a soak that stayed flat. Nchan's soak verdict is reported, not held
// against the run: it is the baseline, not what is being tested.
func (r *runResult) ok() bool {
	return r.Err == nil && r.lost() == 0 && r.Report.Dups == 0 && r.Report.Misrouted == 0 &&
		r.Report.Bad == 0 && r.PubFailed == 0 && r.Opened == int64(r.Streams) &&
		(r.Mode != "storm" || r.Storm.AllCaughtUp > 0) &&
		(r.Soak == nil || r.Soak.flat || r.Target != "noticed")
}

// streamsMode runs every combination of target, streams and rate, one at
// a time, and reports each as it ends and all of them at the end.
func streamsMode(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	tl, err := prepare(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer tl.cleanup()
	fmt.Fprintf(stdout, "noticed-bench -mode %s: %d CPUs; load average %s\n", cfg.mode, runtime.NumCPU(), loadAverage())
	var rs []*runResult
	for _, n := range cfg.streams {
		for _, rate := range cfg.rates {
			for round, spec := range rounds(cfg.targets, cfg.pairs) {
				r := oneRun(ctx, cfg, tl, spec, round/len(cfg.targets), n, rate, stderr)
				writeRun(stdout, r)
				if cfg.csv != "" {
					if err := appendCSV(cfg.csv, r); err != nil {
						fmt.Fprintf(stderr, "noticed-bench: -csv: %v\n", err)
					}
				}
				rs = append(rs, r)
				if ctx.Err() != nil {
					break
				}
			}
		}
	}
	writeSummary(stdout, rs)
	if cfg.pairs > 1 {
		writePaired(stdout, rs, cfg.targets)
	}
	for _, r := range rs {
		if !r.ok() {
			return errFailed
		}
	}
	return nil
}

// oneRun starts the target, opens the streams, runs the mode and collects
// what everybody saw.
func oneRun(ctx context.Context, cfg config, tl *tools, spec string, round, n int, rate float64, progress io.Writer) *runResult {
	kind, how := targetKind(cfg, spec)
	r := &runResult{Mode: cfg.mode, Target: kind, Spec: spec, Round: round, Publish: how.publish, PostBatch: how.batch, Streams: n, PerUser: cfg.perUser,
		Rate: rate, Duration: cfg.duration, Behind: cfg.behind, InFlight: cfg.inFlight}
	if cfg.mode == "load" && rate == 0 {
		r.Publish = ""
	}
	if cfg.mode == "storm" {
		rate = 1 // publishes, unpaced
	}
	fmt.Fprintf(progress, "%s, %s, %d streams, %g events/s: starting... ", kind, cfg.mode, n, r.Rate)
	defer func() {
		if r.Err != nil {
			fmt.Fprintln(progress, "failed")
		} else {
			fmt.Fprintln(progress, "done")
		}
	}()
	t, err := startTarget(ctx, cfg, tl, kind, n)
	if err != nil {
		r.Err = err
		return r
	}
	defer t.stop()
	r.ServerVer = t.version
	if t.rdb != nil {
		r.HaveRedis = true
		r.RedisVer = redisVersion(ctx, t.rdb)
	}
	users := n / cfg.perUser
	prefix := "b" + randomHex(3) + "-"
	names := make([]string, users)
	for i := range names {
		names[i] = userName(prefix, i)
	}

	// The server at rest, before any stream.
	if !pause(ctx, cfg.settle) {
		r.Err = ctx.Err()
		return r
	}
	var beforeGoroutines int64 = -1
	if len(t.pids) > 0 {
		r.HaveServer = true
		if r.Before, err = sampleProcs(t.pids); err != nil {
			r.Err = err
			return r
		}
		beforeGoroutines = goroutines(ctx, t.metricsURL)
	}

	r.Procs = cfg.procs
	if r.Procs == 0 {
		r.Procs = (n + maxStreamsPerProcess - 1) / maxStreamsPerProcess
		if r.Procs == 1 {
			r.Procs = 0 // this process: no worker
		}
	}
	sources := cfg.sources
	if sources == 0 {
		sources = (n + streamsPerSource - 1) / streamsPerSource
	}
	fs := fleetSpec{Kind: kind, Host: t.host, Users: users, UserPrefix: prefix, Secret: t.secret,
		TokenTTL: 24 * time.Hour, Sources: sources, InFlight: cfg.inFlight}
	c, err := startCrew(fs, n, r.Procs)
	if err != nil {
		r.Err = err
		return r
	}
	finished := false
	finish := func() {
		if finished {
			return
		}
		finished = true
		rep, err := c.finish(context.WithoutCancel(ctx))
		r.Report = rep
		r.OpenFailures = addCounts(r.OpenFailures, rep.Failures)
		if err != nil && r.Err == nil {
			r.Err = err
		}
	}
	defer finish()

	fmt.Fprintf(progress, "opening... ")
	start := time.Now()
	op, err := c.open(ctx, cfg.openTimeout)
	r.Opened = op.Opened
	if err != nil {
		r.Err = err
		return r
	}
	if op.Opened < int64(n) {
		r.Err = fmt.Errorf("%d of %d streams opened within %v", op.Opened, n, cfg.openTimeout)
		return r
	}
	r.OpenTime = time.Since(start)
	fmt.Fprintf(progress, "%.1fs; settling... ", r.OpenTime.Seconds())
	if !pause(ctx, cfg.settle) {
		r.Err = ctx.Err()
		return r
	}
	if r.HaveServer {
		if r.Idle, err = sampleProcs(t.pids); err != nil {
			r.Err = err
			return r
		}
	}
	if rate == 0 {
		return r
	}

	p, err := newProducer(t, how.publish, names, cfg.postConns, how.batch)
	if err != nil {
		r.Err = err
		return r
	}
	defer p.close()
	random := func(int64) int { return rand.N(users) }
	each := func(i int64) int { return int(i % int64(users)) }
	m := &meter{t: t, r: r}

	switch cfg.mode {
	case "load":
		fmt.Fprintf(progress, "warming up... ")
		p.run(ctx, plan{rate: rate, d: cfg.warmup, phase: phaseWarmup, pick: random})
		r.Err = waitDelivered(ctx, c, p.ok.Load()*int64(cfg.perUser), cfg.drain)
		if r.Err != nil {
			break
		}
		fmt.Fprintf(progress, "measuring... ")
		m.begin(ctx)
		sent, took := p.run(ctx, plan{rate: rate, d: cfg.duration, phase: phaseMeasured, pick: random})
		r.WindowSent, r.PubRate = sent, float64(sent)/took.Seconds()
		r.Err = waitDelivered(ctx, c, p.ok.Load()*int64(cfg.perUser), cfg.drain)
		m.end(ctx)

	case "storm":
		// One event each first, so that every stream has an event's id to
		// come back with, on both servers.
		// The storm is the reconnect: what is published while the streams
		// are away goes as fast as the producer can (-rate is not used).
		fmt.Fprintf(progress, "one event each... ")
		p.run(ctx, plan{count: int64(users), phase: phaseWarmup, pick: each})
		if r.Err = waitDelivered(ctx, c, p.ok.Load()*int64(cfg.perUser), cfg.drain); r.Err != nil {
			break
		}
		fmt.Fprintf(progress, "dropping all... ")
		if r.Err = c.drop(ctx); r.Err != nil {
			break
		}
		fmt.Fprintf(progress, "publishing %d behind each... ", cfg.behind)
		sent, took := p.run(ctx, plan{count: int64(users) * int64(cfg.behind), phase: phaseBehind, pick: each})
		r.PubRate = float64(sent) / took.Seconds()
		fmt.Fprintf(progress, "reconnecting all... ")
		m.begin(ctx)
		r.Storm, r.Err = c.reconnect(ctx, 1+int64(cfg.behind), cfg.openTimeout)
		r.WindowSent = sent
		m.end(ctx)
		if r.Err == nil && r.Storm.AllCaughtUp == 0 {
			// Say who is missing what, after the drain's grace.
			_ = waitDelivered(ctx, c, p.ok.Load()*int64(cfg.perUser), cfg.drain)
		}

	case "soak":
		r.Soak = &soakResult{before: soakSample{procSample: r.Before, goroutines: beforeGoroutines}}
		churn := cfg.churn
		if churn < 0 {
			churn = float64(n) / 100
		}
		r.Soak.churn = churn
		fmt.Fprintf(progress, "soaking for %v... ", cfg.duration)
		sampler := startSampler(ctx, t, cfg.sample)
		m.begin(ctx)
		if r.Err = c.churn(ctx, churn); r.Err != nil {
			sampler.stop()
			break
		}
		sent, took := p.run(ctx, plan{rate: rate, d: cfg.duration, phase: phaseMeasured, pick: random})
		r.WindowSent, r.PubRate = sent, float64(sent)/took.Seconds()
		r.Err = c.churn(ctx, 0)
		if err := waitDelivered(ctx, c, p.ok.Load()*int64(cfg.perUser), cfg.drain); r.Err == nil {
			r.Err = err
		}
		m.end(ctx)
		r.Soak.during = sampler.stop()
		fmt.Fprintf(progress, "closing... ")
		p.close()
		finish()
		r.Soak.after = settleAfter(ctx, t, beforeGoroutines, cfg.settle)
		r.Soak.judge()
	}
	r.Sent = p.ok.Load()
	r.PubFailed = p.failed.Load()
	r.PubFirstErr = p.firstError()
	r.Expected = r.Sent * int64(cfg.perUser)
	finish()
	return r
}

// meter reads the server's and Redis's CPU at the start and end of the
// measured window.
type meter struct {
	t      *target
	r      *runResult
	start  time.Time
	proc   procSample
	redis  redisStats
	haveRS bool
}

func (m *meter) begin(ctx context.Context) {
	m.start = time.Now()
	if m.r.HaveServer {
		m.proc, _ = sampleProcs(m.t.pids)
	}
	if m.t.rdb != nil {
		var err error
		m.redis, err = readStats(ctx, m.t.rdb)
		m.haveRS = err == nil
	}
}

func (m *meter) end(ctx context.Context) {
	m.r.Window = time.Since(m.start)
	if m.r.HaveServer {
		if s, err := sampleProcs(m.t.pids); err == nil {
			m.r.ServerCPU = s.CPU - m.proc.CPU
		}
	}
	if m.haveRS {
		if st, err := readStats(ctx, m.t.rdb); err == nil {
			d := st.since(m.redis)
			m.r.RedisCPU = time.Duration(d.cpu * float64(time.Second))
			m.r.RedisCmds = d.commands
		}
	}
}

// waitDelivered waits until the streams have want distinct events in all,
// or limit has passed (the shortfall is then reported as lost).
func waitDelivered(ctx context.Context, c crew, want int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		got, err := c.received(ctx)
		if err != nil {
			return err
		}
		if got >= want || time.Now().After(deadline) {
			return nil
		}
		if !pause(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// pause waits d; false if ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// rounds is the order of the runs at one number of streams and one rate:
// every target once per round, the order reversed every other round, so
// that no target always runs first on a fresh machine or last on a
// warm one.
func rounds(targets []string, pairs int) []string {
	var out []string
	for i := range pairs {
		round := slices.Clone(targets)
		if i%2 == 1 {
			slices.Reverse(round)
		}
		out = append(out, round...)
	}
	return out
}
