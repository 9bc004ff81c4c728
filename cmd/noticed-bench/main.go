// Command noticed-bench measures noticed under load. Its first mode,
// follow, drives the routing layer with in-process subscribers over the
// Redis backend and reports what following many users costs Redis per
// event, and how long an event takes from XADD to its subscriber.
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
	switch cfg.mode {
	case "follow":
		err = followMode(ctx, cfg, stdout, stderr)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errFailed):
		return 1
	}
	fmt.Fprintf(stderr, "noticed-bench: %v\n", err)
	return 1
}
