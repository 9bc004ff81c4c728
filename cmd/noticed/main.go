// Command noticed pushes notifications to one user at a time over
// Server-Sent Events, from as many instances as the load needs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `noticed pushes each user's notifications to their browsers over Server-Sent Events.

Usage:
  noticed [serve] [flags]     run the server (flags below; each has an env twin NOTICED_<FLAG>)
  noticed token -sub USER [-ttl 1h] [-scope publish]
                              print a token signed with -jwt-secret / NOTICED_JWT_SECRET
                              (or the first oct key of a JWK Set -jwt-key-file)
  noticed health [-addr :8080] [-path /healthz]
                              exit 0 when the noticed at -addr / NOTICED_ADDR answers 200
                              (a container's health check, without a shell)

Run 'noticed serve -h', 'noticed token -h' or 'noticed health -h' for the flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stdout, stderr)
	case "token":
		err = token(args, stdout, stderr)
	case "health":
		err = health(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "noticed: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "noticed %s: %v\n", cmd, err)
		return 2
	}
	fmt.Fprintf(stderr, "noticed %s: %v\n", cmd, err)
	return 1
}

var errUsage = errors.New("usage")
