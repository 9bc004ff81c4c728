package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/metrics"
	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/redisstore"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/server"
	"github.com/noticed/noticed/internal/sse"
)

// serve runs the server until ctx ends (SIGTERM or SIGINT), then drains.
// SIGHUP re-reads -jwt-key-file. Signals and the process-wide loggers are
// set here, not in Main, so that tests can run several Mains at once.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// At once: SIGHUP's default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	m := NewMain(stdout, stderr)
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	slog.SetDefault(m.log)
	redis.SetLogger(redisLog{m.log})

	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	var err error
	for waiting := true; waiting; {
		select {
		case <-hup:
			m.ReloadKeys()
		case err = <-m.Failed():
			waiting = false
		case <-ctx.Done():
			waiting = false
		}
	}
	if cerr := m.Close(); cerr != nil {
		// The streams are drained by now: the exit code says how serving
		// ended, the log says what was left behind.
		m.log.Warn("closing the backend failed", "err", cerr)
	}
	return err
}

// Main is one noticed server: ParseFlags fills Config, Run opens the
// backend, the token keys, the hub and the listener and serves, Close
// drains the streams and releases everything.
type Main struct {
	Config Config
	stdout io.Writer // the log
	stderr io.Writer // flag errors, usage, dev mode's tokens
	log    *slog.Logger

	dev       *devMode
	verifier  *auth.Verifier
	store     routing.Store
	tracker   *presence.Tracker
	hub       *routing.Hub
	streams   *sse.Handler
	srv       *server.Listener
	stopDebug func()
	failed    chan error
	closed    bool
}

// NewMain returns a Main that logs to stdout and prints to stderr what a
// person starting it reads (flag errors, dev mode's tokens).
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr, failed: make(chan error, 1)}
}

// ParseFlags parses the serve flags and their env twins into m.Config and
// checks them; a setting that cannot work is an errUsage.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("noticed serve", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	serveFlags(fs, &m.Config)
	if err := parseWithEnv(fs, args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := m.Config.check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	log, err := newLogger(m.stdout, m.Config.LogLevel)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	m.log = log
	return nil
}

// Run opens everything and serves in the background. It listens before
// it returns, so a bad or busy address fails here, at once. After an
// error, Close releases what Run opened.
func (m *Main) Run(ctx context.Context) error {
	c := &m.Config
	if m.log == nil {
		log, err := newLogger(m.stdout, c.LogLevel)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		m.log = log
	}
	log := m.log

	verifier, dev, err := newVerifier(c, m.stderr, log)
	m.dev = dev
	if err != nil {
		return err
	}
	m.verifier = verifier
	if c.JWTKeyFile != "" {
		log.Info("token keys loaded", "file", c.JWTKeyFile, "kids", verifier.KeyIDs(), "algorithms", verifier.Algorithms())
	}

	reg := prometheus.NewRegistry()
	metric := metrics.New(reg)

	store, err := newStore(ctx, c, log)
	if err != nil {
		return err
	}
	m.store = store
	metrics.RegisterReady(reg, backendName(c), store.Ping)
	metric.MaxConns.Set(float64(maxConns(c.MaxConns)))
	if rs, ok := store.(*redisstore.Store); ok {
		reg.MustRegister(rs.Collector()) // the per-node series
	}

	var presenceBackend presence.Backend
	var counter routing.Counter
	if c.Presence {
		if rs, ok := store.(*redisstore.Store); ok {
			presenceBackend = rs.Presence(c.PresenceStream)
		} else {
			presenceBackend = presence.NewLocal(store, c.PresenceStream)
		}
		m.tracker = presence.NewTracker(presenceBackend, presence.Options{Lease: c.PresenceLease, Logger: log})
		go m.tracker.Run()
		counter = m.tracker
	}
	m.hub = routing.New(store, sse.AppendEntry, routing.Options{
		Presence:        counter,
		QueueLen:        c.QueueLen,
		MaxConnsPerUser: c.MaxConnsPerUser,
		MaxConns:        maxConns(c.MaxConns),
		TrimLen:         int(min(c.StreamMaxLen, 1<<30)),
		Metrics:         metric,
		Logger:          log,
	})
	go m.hub.Run()
	m.streams = sse.NewHandler(m.hub, store, sse.Options{Heartbeat: c.Heartbeat, Metrics: metric, Logger: log})
	handler := server.New(server.Config{
		Verifier:           verifier,
		Store:              store,
		Append:             m.hub.Append,
		Presence:           presenceBackend,
		Streams:            m.streams,
		Metrics:            metric,
		Gatherer:           reg,
		Logger:             log,
		MaxPayload:         c.MaxPayload,
		MaxUsersPerPublish: c.MaxUsersPerPublish,
		MaxUserLen:         c.MaxUserLen,
		MaxEventLen:        c.MaxEventLen,
		BodyTimeout:        c.ReadHeaderTimeout,
		TrustedProxies:     c.proxies(),
		CORSOrigins:        c.origins(),
		TokenLeeway:        c.JWTLeeway,
		Extra:              devPage(dev),
	})

	// No TCP keep-alive probes: streams send heartbeats, idle keep-alive
	// connections are closed by -idle-timeout, and the probes' four socket
	// options per connection are a measurable share of opening a stream.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", c.Addr)
	if err != nil {
		return err
	}
	if c.DebugAddr != "" {
		if m.stopDebug, err = serveDebug(c.DebugAddr, log); err != nil {
			ln.Close()
			return err
		}
	}
	m.srv = server.Listen(ln, handler, c.limits(), log)
	if dev != nil {
		dev.print(m.stderr, ln.Addr())
	}
	log.Info("noticed listening", "addr", ln.Addr().String(), "backend", backendName(c), "max_conns", maxConns(c.MaxConns))
	go func() {
		if err := m.srv.Serve(); !errors.Is(err, http.ErrServerClosed) {
			m.failed <- err
		}
	}()
	return nil
}

// Addr is the address Run listens on, nil before.
func (m *Main) Addr() net.Addr {
	if m.srv == nil {
		return nil
	}
	return m.srv.Addr()
}

// Failed receives the error that stopped serving before Close was called.
func (m *Main) Failed() <-chan error { return m.failed }

// ReloadKeys re-reads -jwt-key-file (SIGHUP).
func (m *Main) ReloadKeys() {
	if m.verifier != nil {
		reloadKeys(&m.Config, m.verifier, m.log)
	}
}

// Close drains: it stops accepting, tells every stream to come back soon
// (each at its own jittered moment) and waits for them to close, at most
// -drain-timeout; then it releases the backend, the keys and dev mode's
// secret file. It returns the backend's close error. Close after a failed
// Run releases what Run opened.
func (m *Main) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	if m.srv != nil {
		m.drain()
	} else if m.hub != nil {
		m.hub.Close()
	}
	if m.tracker != nil {
		// The streams are closed: the tracker writes their users' counts
		// down and gives its lease up.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m.tracker.Close(ctx)
		cancel()
	}
	if m.srv != nil {
		m.log.Info("stopped")
	}
	if m.stopDebug != nil {
		m.stopDebug()
	}
	var err error
	if m.store != nil {
		err = m.store.Close()
	}
	if m.verifier != nil {
		m.verifier.Close()
	}
	m.dev.close()
	return err
}

func (m *Main) drain() {
	timeout := m.Config.DrainTimeout
	m.log.Info("shutting down: draining streams", "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- m.srv.Shutdown(ctx) }()
	m.hub.Close()
	err := <-shut
	if err == nil {
		err = m.streams.Wait(ctx)
	}
	if err != nil {
		m.log.Warn("drain timed out; closing the rest", "err", err)
		m.srv.Close()
		_ = m.streams.Wait(ctx)
	}
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// serveDebug serves net/http/pprof on its own listener, apart from the
// public one, for profiling (see docs/benchmarks.md).
func serveDebug(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("profiler listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
