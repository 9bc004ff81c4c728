// Command noticed-bench measures noticed under load, and Nchan beside it
// with the same tool. Modes load, storm and soak open real event streams
// over loopback TCP against a server it starts (or one already running),
// publish events stamped with their send time, and report what arrived,
// how fast, and what it cost the server and Redis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errFailed means the run finished but its figures fail a check (events
// lost or doubled, or the cost bound broken); the report says which.
var errFailed = errors.New("check failed")

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "noticed-bench: %v\n", err)
		return 2
	}
	if cfg.floor != "" {
		if err := floorMain(ctx, cfg.floor); err != nil {
			fmt.Fprintf(stderr, "noticed-bench floor: %v\n", err)
			return 1
		}
		return 0
	}
	if cfg.worker {
		if err := workerMain(ctx, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(stderr, "noticed-bench worker: %v\n", err)
			return 1
		}
		return 0
	}
	limit := cfg.timeout
	if limit == 0 {
		limit = autoTimeout(cfg)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "noticed-bench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "noticed-bench: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	err = streamsMode(ctx, cfg, stdout, stderr)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		fmt.Fprintf(stderr, "noticed-bench: stopped by the %v time limit (-timeout)\n", limit)
		return 1
	case err == nil:
		return 0
	case errors.Is(err, errFailed):
		return 1
	}
	fmt.Fprintf(stderr, "noticed-bench: %v\n", err)
	return 1
}

// autoTimeout bounds an invocation by what its runs may take at most,
// every wait at its limit, with a few minutes to spare.
func autoTimeout(cfg config) time.Duration {
	per := time.Minute + cfg.openTimeout + 2*cfg.settle + cfg.warmup + cfg.duration + 2*cfg.drain
	switch cfg.mode {
	case "storm":
		per += cfg.openTimeout
	case "soak":
		per += 30*time.Second + cfg.settle
	}
	runs := len(cfg.targets) * len(cfg.streams) * len(cfg.rates) * cfg.pairs
	return time.Duration(runs)*per + 5*time.Minute
}
