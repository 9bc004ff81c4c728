package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// health asks a running noticed for /healthz and succeeds on a 200: the
// container image's HEALTHCHECK, which has no shell or curl to do it with.
// The address is -addr (or NOTICED_ADDR), as the server was given it; an
// address without a host is asked on loopback.
func health(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("noticed health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "the server's listen address (env NOTICED_ADDR)")
	path := fs.String("path", "/healthz", "what to ask for: /healthz (the process serves) or /readyz (its backend answers)")
	timeout := fs.Duration("timeout", 3*time.Second, "longest wait for the answer")
	if err := parseWithEnv(fs, args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("%w: -addr %q: %v", errUsage, *addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + *path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(url + ": " + resp.Status)
	}
	fmt.Fprintln(stdout, url+": "+resp.Status)
	return nil
}
