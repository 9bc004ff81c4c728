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
	"strings"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/demo"
	"github.com/noticed/noticed/internal/filestore"
	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/metrics"
	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/redisstore"
	"github.com/noticed/noticed/internal/retry"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/server"
	"github.com/noticed/noticed/internal/sse"
)

// serve runs the server until ctx ends (SIGTERM or SIGINT), then drains.
// SIGHUP re-reads -jwt-key-file.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// At once: SIGHUP's default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var c Config
	fs := flag.NewFlagSet("noticed serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serveFlags(fs, &c)
	if err := parseWithEnv(fs, args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := c.check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	log, err := newLogger(stdout, c.LogLevel)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	slog.SetDefault(log)

	verifier, dev, err := newVerifier(&c, stderr, log)
	defer dev.close()
	if err != nil {
		return err
	}
	defer verifier.Close()
	if c.JWTKeyFile != "" {
		log.Info("token keys loaded", "file", c.JWTKeyFile, "kids", verifier.KeyIDs(), "algorithms", verifier.Algorithms())
	}
	go func() {
		for {
			select {
			case <-hup:
				reloadKeys(&c, verifier, log)
			case <-ctx.Done():
				return
			}
		}
	}()

	reg := prometheus.NewRegistry()
	m := metrics.New(reg)

	store, err := newStore(ctx, &c, log)
	if err != nil {
		return err
	}
	defer store.Close()
	metrics.RegisterReady(reg, backendName(&c), store.Ping)
	m.MaxConns.Set(float64(maxConns(c.MaxConns)))
	if rs, ok := store.(*redisstore.Store); ok {
		reg.MustRegister(rs.Collector()) // the per-node series
	}

	var presenceBackend presence.Backend
	var tracker *presence.Tracker
	if c.Presence {
		if rs, ok := store.(*redisstore.Store); ok {
			presenceBackend = rs.Presence(c.PresenceStream)
		} else {
			presenceBackend = presence.NewLocal(store, c.PresenceStream)
		}
		tracker = presence.NewTracker(presenceBackend, presence.Options{Lease: c.PresenceLease, Logger: log})
		go tracker.Run()
	}
	var counter routing.Counter
	if tracker != nil {
		counter = tracker
	}
	hub := routing.New(store, sse.AppendEntry, routing.Options{
		Presence:        counter,
		QueueLen:        c.QueueLen,
		MaxConnsPerUser: c.MaxConnsPerUser,
		MaxConns:        maxConns(c.MaxConns),
		TrimLen:         int(min(c.StreamMaxLen, 1<<30)),
		Metrics:         m,
		Logger:          log,
	})
	go hub.Run()
	streams := sse.NewHandler(hub, store, sse.Options{Heartbeat: c.Heartbeat, Metrics: m, Logger: log})
	handler := server.New(server.Config{
		Verifier:           verifier,
		Store:              store,
		Presence:           presenceBackend,
		Streams:            streams,
		Metrics:            m,
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

	// Listen before serving, so a bad or busy address fails at once.
	// No TCP keep-alive probes: streams send heartbeats, idle keep-alive
	// connections are closed by -idle-timeout, and the probes' four socket
	// options per connection are a measurable share of opening a stream.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", c.Addr)
	if err != nil {
		hub.Close()
		return err
	}
	srv := server.Listen(ln, handler, c.limits(), log)
	if c.DebugAddr != "" {
		stop, err := serveDebug(c.DebugAddr, log)
		if err != nil {
			hub.Close()
			ln.Close()
			return err
		}
		defer stop()
	}
	if dev != nil {
		dev.print(stderr, ln.Addr())
	}
	log.Info("noticed listening", "addr", ln.Addr().String(), "backend", backendName(&c), "max_conns", maxConns(c.MaxConns))

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	select {
	case err := <-served:
		hub.Close()
		return err
	case <-ctx.Done():
	}

	// Drain: stop accepting, tell every stream to come back soon (each at
	// its own jittered moment), wait for them to close, bounded.
	log.Info("shutting down: draining streams", "timeout", c.DrainTimeout)
	drainCtx, cancel := context.WithTimeout(context.Background(), c.DrainTimeout)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(drainCtx) }()
	hub.Close()
	err = <-shut
	if err == nil {
		err = streams.Wait(drainCtx)
	}
	if err != nil {
		log.Warn("drain timed out; closing the rest", "err", err)
		srv.Close()
		_ = streams.Wait(drainCtx)
	}
	if tracker != nil {
		// The streams are closed: the tracker writes their users' counts
		// down and gives its lease up.
		pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
		tracker.Close(pctx)
		pcancel()
	}
	log.Info("stopped")
	return nil
}

// reloadKeys re-reads -jwt-key-file on SIGHUP. Requests after it use the
// new keys; open streams were authenticated when they opened and go on
// (their token's exp still ends them). A file that cannot be read or
// parsed leaves the keys in force.
func reloadKeys(c *Config, v *auth.Verifier, log *slog.Logger) {
	if c.JWTKeyFile == "" {
		log.Info("SIGHUP: keys come from -jwt-secret, -jwks-url or dev mode, not a key file: nothing to reload")
		return
	}
	data, err := os.ReadFile(c.JWTKeyFile)
	if err == nil {
		err = v.ReloadKeys(data)
	}
	if err != nil {
		log.Error("keys not reloaded; the previous keys stay in force", "file", c.JWTKeyFile, "err", err)
		return
	}
	log.Info("keys reloaded", "file", c.JWTKeyFile, "kids", v.KeyIDs(), "algorithms", v.Algorithms())
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
	redis.SetLogger(redisLog{log})
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

// devPage serves the demo page at / in dev mode only: it is for trying
// noticed out, not for production.
func devPage(dev *devMode) func(chi.Router) {
	if dev == nil {
		return nil
	}
	return demo.Mount
}

// devMode holds the tokens printed when no key is configured, and the file
// the random secret was written to for `noticed token`.
type devMode struct {
	subscriber, publisher string
	secretFile            string
	removeSecret          func()
}

// close removes the dev secret's file.
func (d *devMode) close() {
	if d != nil && d.removeSecret != nil {
		d.removeSecret()
	}
}

func newVerifier(c *Config, stderr io.Writer, log *slog.Logger) (*auth.Verifier, *devMode, error) {
	cfg := auth.Config{Issuer: c.JWTIssuer, Audience: c.JWTAudience, Leeway: c.JWTLeeway, MaxUserLen: c.MaxUserLen}
	switch {
	case len(c.JWKSURLs) > 0:
		set, err := newJWKS(c, log)
		if err != nil {
			return nil, nil, err
		}
		cfg.JWKS = set
	case c.JWTKeyFile != "":
		data, err := os.ReadFile(c.JWTKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("-jwt-key-file: %w", err)
		}
		cfg.KeyFile = data
	case c.JWTSecret != "":
		cfg.Secret = []byte(c.JWTSecret)
	default:
		secret, err := auth.RandomSecret()
		if err != nil {
			return nil, nil, err
		}
		cfg.Secret = secret
		sub, err := auth.Sign(secret, "alice", 24*time.Hour, nil, c.JWTIssuer, c.JWTAudience)
		if err != nil {
			return nil, nil, err
		}
		pub, err := auth.Sign(secret, "dev-publisher", 24*time.Hour, []string{"publish"}, c.JWTIssuer, c.JWTAudience)
		if err != nil {
			return nil, nil, err
		}
		log.Warn("DEV MODE: no -jwt-secret or -jwt-key-file given; tokens are signed with a random secret that dies with this process. Do not run this in production.")
		dev := &devMode{subscriber: sub, publisher: pub}
		if dev.secretFile, dev.removeSecret, err = writeDevSecret(secret); err != nil {
			// Only `noticed token` needs it; the printed tokens still work.
			log.Warn("dev secret not written: `noticed token` cannot mint tokens for this server", "err", err)
		}
		v, err := auth.NewVerifier(cfg)
		return v, dev, err
	}
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		if cfg.JWKS != nil {
			cfg.JWKS.Close()
		}
		if c.JWTKeyFile != "" {
			return nil, nil, fmt.Errorf("-jwt-key-file %s: %w", c.JWTKeyFile, err)
		}
		return nil, nil, fmt.Errorf("-jwt-secret: %w", err)
	}
	return v, nil, nil
}

func (d *devMode) print(w io.Writer, addr net.Addr) {
	base := "http://" + hostPort(addr)
	bar := strings.Repeat("=", 78)
	fmt.Fprintf(w, `%s
 demo page (open in a browser):
   %s/?token=%s&pub=%s

 DEV MODE: no -jwt-secret or -jwt-key-file, so tokens are signed with a random
 secret made at start-up. These tokens work until this process stops (24h at most):

 subscriber (user "alice"):
   %s
 publisher (scope "publish"):
   %s

 watch alice's notifications:
   curl -N '%s/notice?token=%s'
 publish one (in another terminal):
   curl -H 'Authorization: Bearer %s' -d user=alice -d event=greeting -d data='hello alice' %s/notice
%s%s
`, bar, base, d.subscriber, d.publisher, d.subscriber, d.publisher, base, d.subscriber, d.publisher, base, d.mintHint(), bar)
}

// mintHint tells how to get a token for another user, when the secret
// could be kept for `noticed token`.
func (d *devMode) mintHint() string {
	if d.secretFile == "" {
		return ""
	}
	return fmt.Sprintf(` a token for any other user (signed with this server's secret, kept in %s):
   go run ./cmd/noticed token -sub 42
`, d.secretFile)
}

// hostPort names the listen address the way a local client reaches it.
func hostPort(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return fmt.Sprintf("localhost:%d", tcp.Port)
	}
	return net.JoinHostPort(tcp.IP.String(), fmt.Sprint(tcp.Port))
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
