package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// target is the server a run measures, and what the run needs to reach
// it and watch it.
type target struct {
	kind       string // "noticed", "nchan", "centrifugo" or "floor"
	host       string // host:port, loopback
	pids       []int  // the server's processes (children included when read); none: no server figures
	rdb        *redis.Client
	redisAddr  string
	prefix     string // noticed's stream key prefix, for XADD
	secret     string // noticed's or Centrifugo's HMAC secret
	apiKey     string // Centrifugo's HTTP API key
	metricsURL string // noticed's /metrics; "" none
	version    string
	stops      []func() // in reverse order
}

func (t *target) base() string { return "http://" + t.host }

// nchanRoutes: the server is driven as Nchan is (GET /sub/<user>, POST
// /pub/<user> with the data as the body, no tokens): Nchan and the floor.
func nchanRoutes(kind string) bool { return kind == "nchan" || kind == "floor" }

func (t *target) stop() {
	if t.rdb != nil {
		t.rdb.Close()
	}
	for i := len(t.stops) - 1; i >= 0; i-- {
		t.stops[i]()
	}
}

// tools is what this invocation prepared once for all its runs.
type tools struct {
	noticedBin string
	nchanConf  string // its name, for messages
	nchanText  []byte
	nginxBin   string
	centrifugo string
	cleanup    func()
}

// prepare builds noticed (unless -noticed-bin) and finds nginx and the
// Nchan module and config, and Centrifugo, for the targets the runs will
// start.
func prepare(ctx context.Context, cfg config, progress io.Writer) (*tools, error) {
	t := &tools{cleanup: func() {}}
	if cfg.url != "" {
		return t, nil
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server not found: apt-get install redis-server (or scripts/bench-deps.sh)")
	}
	root := moduleRoot()
	for _, spec := range cfg.targets {
		switch kind, _ := targetKind(cfg, spec); kind {
		case "noticed":
			if t.noticedBin != "" {
				continue // built once for every way to publish
			}
			if cfg.noticedBin != "" {
				t.noticedBin = cfg.noticedBin
				continue
			}
			if root == "" {
				return nil, errors.New("not inside the noticed repository: run from it, or give -noticed-bin")
			}
			dir, err := os.MkdirTemp("", "noticed-bench-bin-")
			if err != nil {
				return nil, err
			}
			t.cleanup = func() { os.RemoveAll(dir) }
			t.noticedBin = filepath.Join(dir, "noticed")
			fmt.Fprintf(progress, "building noticed... ")
			cmd := exec.CommandContext(ctx, "go", "build", "-o", t.noticedBin, "./cmd/noticed")
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				t.cleanup()
				return nil, fmt.Errorf("go build ./cmd/noticed: %v\n%s", err, out)
			}
			fmt.Fprintf(progress, "done\n")
		case "centrifugo":
			var err error
			if t.centrifugo, err = findCentrifugo(ctx, cfg.centrifugo); err != nil {
				t.cleanup()
				return nil, err
			}
		case "nchan":
			t.nchanConf, t.nchanText = "nchan.conf (built in)", nchanConf
			if cfg.nchanConf != "" {
				text, err := os.ReadFile(cfg.nchanConf)
				if err != nil {
					t.cleanup()
					return nil, fmt.Errorf("nchan config: %w", err)
				}
				t.nchanConf, t.nchanText = cfg.nchanConf, text
			}
			conf := t.nchanText
			var err error
			if t.nginxBin, err = exec.LookPath("nginx"); err != nil {
				if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
					t.cleanup()
					return nil, errors.New("nginx not found: apt-get install nginx libnginx-mod-nchan (or scripts/bench-deps.sh)")
				}
				t.nginxBin = "/usr/sbin/nginx"
			}
			if m := loadModule.FindSubmatch(conf); m != nil {
				if _, err := os.Stat(string(m[1])); err != nil {
					t.cleanup()
					return nil, fmt.Errorf("the Nchan module %s is missing: apt-get install libnginx-mod-nchan (or scripts/bench-deps.sh)", m[1])
				}
			}
		}
	}
	return t, nil
}

var loadModule = regexp.MustCompile(`(?m)^\s*load_module\s+(\S+);`)

// moduleRoot is the directory of noticed's go.mod (the product's, not
// this tool's), found upwards from the working directory; "" when not
// inside the repository.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/noticed/noticed\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// startTarget starts a fresh redis-server and server of kind for one run
// of n streams, or connects to the one at -url.
func startTarget(ctx context.Context, cfg config, tl *tools, kind string, n int) (*target, error) {
	if cfg.url != "" {
		return externalTarget(ctx, cfg, kind)
	}
	t := &target{kind: kind, prefix: cfg.prefix}
	rs, err := startRedis(ctx)
	if err != nil {
		return nil, err
	}
	t.stops = append(t.stops, rs.close)
	t.redisAddr = rs.addr()
	t.rdb = newRedisClient(&redis.Options{Addr: rs.addr()})
	switch kind {
	case "noticed":
		err = startNoticed(ctx, cfg, tl.noticedBin, t, rs, n)
	case "nchan":
		err = startNchan(ctx, cfg, tl, t, rs)
	case "centrifugo":
		err = startCentrifugo(ctx, cfg, tl.centrifugo, t, rs)
	case "floor":
		err = startFloor(ctx, cfg, t)
	}
	if err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

func newRedisClient(opt *redis.Options) *redis.Client {
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	opt.PoolSize = 16
	// RESP2: with RESP3 go-redis peeks for push notifications on every
	// round trip, which was 8% of this tool's CPU; the benchmark uses none.
	opt.Protocol = 2
	return redis.NewClient(opt)
}

func externalTarget(ctx context.Context, cfg config, kind string) (*target, error) {
	u, _ := url.Parse(cfg.url)
	t := &target{kind: kind, host: u.Host, pids: cfg.serverPIDs, prefix: cfg.prefix, secret: cfg.jwtSecret}
	if kind == "noticed" {
		t.metricsURL = cfg.url + "/metrics"
	}
	if cfg.redisURL != "" {
		opt, err := redis.ParseURL(cfg.redisURL)
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		t.rdb = newRedisClient(opt)
		t.redisAddr = opt.Addr
		if err := t.rdb.Ping(ctx).Err(); err != nil {
			t.rdb.Close()
			return nil, fmt.Errorf("-redis %s: %w", cfg.redisURL, err)
		}
	}
	if len(t.pids) > 0 {
		if _, err := sampleProcs(t.pids); err != nil {
			t.stop()
			return nil, fmt.Errorf("-server-pid: %w", err)
		}
	}
	return t, nil
}

// process is a server this program started: its output is kept (the last
// 64 KiB) to show should it fail.
type process struct {
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	p := &process{cmd: cmd, out: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then kills. group also kills
// what is left of the process group the server leads (nginx's workers).
func (p *process) stop(grace time.Duration, group bool) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if group {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// startNoticed runs one noticed instance on a free loopback port with the
// run's Redis, a fresh secret, and limits out of the way of n streams.
func startNoticed(ctx context.Context, cfg config, bin string, t *target, rs *redisServer, n int) error {
	t.secret = randomHex(32)
	err := startOnFreePort(ctx, cfg, t, "noticed", "/readyz", 15*time.Second, func(host string) (*exec.Cmd, error) {
		return exec.Command(bin, "serve",
			"-addr", host,
			"-redis", rs.url(),
			"-jwt-secret", t.secret,
			"-stream-prefix", cfg.prefix,
			"-max-conns", strconv.Itoa(n+1000),
			"-max-conns-per-user", strconv.Itoa(max(100, 4*cfg.perUser)),
			"-log-level", "warn"), nil
	})
	if err != nil {
		return err
	}
	t.metricsURL = t.base() + "/metrics"
	t.version = "noticed (" + bin + ")" + procsNote(cfg)
	return nil
}

// startOnFreePort starts a Go server (command gives its command line for
// an address) on a free loopback port, with GOMAXPROCS from -server-procs,
// and waits for ready (a path) to answer 200. A port taken by someone else
// meanwhile is retried on another.
func startOnFreePort(ctx context.Context, cfg config, t *target, what, ready string, stopWait time.Duration, command func(host string) (*exec.Cmd, error)) error {
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return err
		}
		t.host = "127.0.0.1:" + strconv.Itoa(port)
		cmd, err := command(t.host)
		if err != nil {
			return err
		}
		cmd.Env = os.Environ()
		if cfg.serverProcs > 0 {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(cfg.serverProcs))
		}
		dieWithParent(cmd)
		p, err := startProcess(cmd)
		if err != nil {
			return fmt.Errorf("start %s: %w", what, err)
		}
		if lastErr = waitHTTP(ctx, p, t.base()+ready, nil); lastErr == nil {
			t.pids = []int{cmd.Process.Pid}
			t.stops = append(t.stops, func() { p.stop(stopWait, false) })
			return nil
		}
		p.stop(time.Second, false)
		if !strings.Contains(p.out.String(), "address already in use") {
			break
		}
	}
	return lastErr
}

// procsNote is what a server's version line says of -server-procs.
func procsNote(cfg config) string {
	if cfg.serverProcs > 0 {
		return ", GOMAXPROCS=" + strconv.Itoa(cfg.serverProcs)
	}
	return ""
}

// startNchan runs nginx with the Nchan config, rewritten onto a free
// port, the run's Redis and a directory of its own.
func startNchan(ctx context.Context, cfg config, tl *tools, t *target, rs *redisServer) error {
	conf := tl.nchanText
	dir, err := os.MkdirTemp("", "noticed-bench-nchan-")
	if err != nil {
		return err
	}
	t.stops = append(t.stops, func() { os.RemoveAll(dir) })
	// The workers run as nobody when the master is root.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return err
		}
		t.host = "127.0.0.1:" + strconv.Itoa(port)
		text, err := rewriteNchanConf(string(conf), t.host, rs.addr(), dir, cfg.serverProcs)
		if err != nil {
			return fmt.Errorf("%s: %w", tl.nchanConf, err)
		}
		path := filepath.Join(dir, "nchan.conf")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
		cmd := exec.Command(tl.nginxBin, "-p", dir+"/", "-c", path, "-g", "daemon off;")
		// Its own process group, so that its workers can be cleaned up
		// with it; SIGTERM, not SIGKILL, should this program die: the
		// master takes its workers down.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		p, err := startProcess(cmd)
		if err != nil {
			return fmt.Errorf("start nginx: %w", err)
		}
		if lastErr = waitHTTP(ctx, p, t.base()+"/nchan_status", nchanReady); lastErr == nil {
			t.pids = []int{cmd.Process.Pid}
			t.stops = append(t.stops, func() { p.stop(15*time.Second, true) })
			out, _ := exec.Command(tl.nginxBin, "-v").CombinedOutput()
			t.version = strings.TrimSpace(string(out)) + " with Nchan"
			if cfg.serverProcs > 0 {
				t.version += ", worker_processes " + strconv.Itoa(cfg.serverProcs)
			}
			return nil
		}
		errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		p.stop(time.Second, true)
		lastErr = fmt.Errorf("%w\nerror.log:\n%s", lastErr, tail(string(errLog), 20))
		if !strings.Contains(p.out.String()+string(errLog), "Address already in use") {
			break
		}
	}
	return lastErr
}

// rewriteNchanConf moves deploy/nchan.conf onto the run's listen address,
// Redis and directory, and its workers to procs when procs > 0. Each
// replacement must apply, so that an edit to the file that this no longer
// understands fails here instead of measuring something else.
func rewriteNchanConf(conf, listen, redisAddr, dir string, procs int) (string, error) {
	rewrites := []struct{ old, new string }{
		{"listen 127.0.0.1:8090", "listen " + listen},
		{"redis://127.0.0.1:6379", "redis://" + redisAddr},
		{"/tmp/nchan-bench", dir},
	}
	if procs > 0 {
		rewrites = append(rewrites, struct{ old, new string }{"worker_processes 2;", "worker_processes " + strconv.Itoa(procs) + ";"})
	}
	for _, r := range rewrites {
		if !strings.Contains(conf, r.old) {
			return "", fmt.Errorf("no %q to rewrite", r.old)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	return conf, nil
}

// nchanReady: nginx answers and every worker has its Redis connection.
func nchanReady(body string) bool {
	m := regexp.MustCompile(`redis connected servers: (\d+)`).FindStringSubmatch(body)
	return m != nil && m[1] != "0" && strings.Contains(body, "redis unhealthy upstreams: 0")
}

// waitHTTP polls url until it answers 200 (and ok accepts the body), the
// process exits, or 30 s pass.
func waitHTTP(ctx context.Context, p *process, url string, ok func(string) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		if p.exited() {
			return fmt.Errorf("%s exited at start:\n%s", filepath.Base(p.cmd.Path), tail(p.out.String(), 20))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, tail(string(b), 10))
			if resp.StatusCode == http.StatusOK && (ok == nil || ok(string(b))) {
				return nil
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 30s (%s); its output:\n%s", url, last, tail(p.out.String(), 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
