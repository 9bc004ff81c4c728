package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/memstore"
	"github.com/noticed/noticed/internal/metrics"
	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/server"
	"github.com/noticed/noticed/internal/sse"
)

var secret = []byte("test-secret-that-is-long-enough-for-hs256")

// env is one noticed instance served in-process on the memory backend,
// through the listener production serves on (server.Listen: the front
// door, then net/http) on a real loopback socket.
type env struct {
	t       *testing.T
	url     string
	store   routing.Store
	hub     *routing.Hub
	metrics *metrics.Metrics
	logs    *syncBuffer
	handler http.Handler
}

type envOptions struct {
	maxLen       int
	queueLen     int
	heartbeat    time.Duration
	maxPayload   int64
	perUser      int
	maxConns     int
	cors         []string
	store        routing.Store
	writeTimeout time.Duration // default 2s
	limits       server.Limits // default: production's (10s, 2m, 16 KiB)

	maxUsers    int
	maxUserLen  int
	maxEventLen int
	bodyTimeout time.Duration
	proxies     server.Proxies
	verifier    *auth.Verifier // default: one for secret
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.maxLen == 0 {
		o.maxLen = 1000
	}
	if o.writeTimeout == 0 {
		o.writeTimeout = 2 * time.Second
	}
	if o.limits.ReadHeaderTimeout == 0 {
		o.limits.ReadHeaderTimeout = 10 * time.Second
	}
	if o.limits.IdleTimeout == 0 {
		o.limits.IdleTimeout = 2 * time.Minute
	}
	if o.limits.MaxHeaderBytes == 0 {
		o.limits.MaxHeaderBytes = 16 << 10
	}
	store := o.store
	if store == nil {
		ms := memstore.New(memstore.Options{MaxLen: o.maxLen, TTL: time.Hour})
		t.Cleanup(func() { ms.Close() })
		store = ms
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	pres := presence.NewLocal(store, "")
	tracker := presence.NewTracker(pres, presence.Options{Logger: log})
	go tracker.Run()
	hub := routing.New(store, sse.AppendEntry, routing.Options{
		Presence: tracker,
		QueueLen: o.queueLen, MaxConnsPerUser: o.perUser, MaxConns: o.maxConns, Metrics: m, Logger: log,
	})
	go hub.Run()
	verifier := o.verifier
	if verifier == nil {
		var err error
		if verifier, err = auth.NewVerifier(auth.Config{Secret: secret}); err != nil {
			t.Fatal(err)
		}
	}
	h := server.New(server.Config{
		Verifier:    verifier,
		Store:       store,
		Append:      hub.Append,
		Presence:    pres,
		Streams:     sse.NewHandler(hub, store, sse.Options{Heartbeat: o.heartbeat, Metrics: m, Logger: log, WriteTimeout: o.writeTimeout}),
		Metrics:     m,
		Gatherer:    reg,
		Logger:      log,
		MaxPayload:  o.maxPayload,
		CORSOrigins: o.cors,

		MaxUsersPerPublish: o.maxUsers,
		MaxUserLen:         o.maxUserLen,
		MaxEventLen:        o.maxEventLen,
		BodyTimeout:        o.bodyTimeout,
		TrustedProxies:     o.proxies,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := server.Listen(ln, h, o.limits, log)
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	t.Cleanup(func() {
		hub.Close()
		tracker.Close(context.Background())
		l.Close()
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
	})
	return &env{t: t, url: "http://" + l.Addr().String(), store: store, hub: hub, metrics: m, logs: logs, handler: h}
}

// hostile marks a test whose clients misbehave: when it ends (its own
// connections closed by their cleanups, which run first), every stream
// it opened must have been released, noticed_streams_open back where it
// was when hostile was called.
func (e *env) hostile() {
	e.t.Helper()
	baseline := testutil.ToFloat64(e.metrics.StreamsOpen)
	e.t.Cleanup(func() {
		waitFor(e.t, "noticed_streams_open back to its baseline", func() bool {
			return testutil.ToFloat64(e.metrics.StreamsOpen) == baseline
		})
	})
}

func token(t *testing.T, sub string, scopes ...string) string {
	t.Helper()
	tok, err := auth.Sign(secret, sub, time.Hour, scopes, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// stream is an open GET /notice read as a browser would.
type stream struct {
	pending []sse.Event // read ahead by a test, returned first by next
	resp    *http.Response
	events  chan sse.Event
	done    chan error
	cancel  context.CancelFunc
}

// open starts a stream and waits for its status line; the read state it
// starts with is left out of its events.
func (e *env) open(query string, header http.Header) (*http.Response, *stream) {
	e.t.Helper()
	return e.openStream(query, header, false)
}

// openStream is open; with readState the stream's first read state is
// its first event.
func (e *env) openStream(query string, header http.Header, readState bool) (*http.Response, *stream) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/notice?"+query, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatalf("GET /notice: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		return resp, nil
	}
	s := &stream{resp: resp, events: make(chan sse.Event, 10000), done: make(chan error, 1), cancel: cancel}
	go func() {
		r := sse.NewReader(resp.Body)
		r.Comments = true
		r.ReadState = readState
		for {
			ev, err := r.Next()
			if err != nil {
				s.done <- err
				close(s.events)
				return
			}
			s.events <- ev
		}
	}()
	e.t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp, s
}

// subscribe opens a stream for user that must succeed.
func (e *env) subscribe(user string, query ...string) *stream {
	e.t.Helper()
	q := url.Values{"token": {token(e.t, user)}}
	for i := 0; i+1 < len(query); i += 2 {
		q.Set(query[i], query[i+1])
	}
	resp, s := e.open(q.Encode(), nil)
	if s == nil {
		body, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("GET /notice for %s: %d %s", user, resp.StatusCode, body)
	}
	return s
}

// next returns the next event that is not a comment.
func (s *stream) next(t *testing.T) sse.Event {
	t.Helper()
	if len(s.pending) > 0 {
		ev := s.pending[0]
		s.pending = s.pending[1:]
		return ev
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended: %v", <-s.done)
			}
			if ev.Comment {
				continue
			}
			return ev
		case <-timeout:
			t.Fatal("no event within 10s")
		}
	}
}

// none asserts no event is waiting (comments aside).
func (s *stream) none(t *testing.T) {
	t.Helper()
	if len(s.pending) > 0 {
		t.Fatalf("unexpected event %+v", s.pending[0])
	}
	for {
		select {
		case ev, ok := <-s.events:
			if ok && ev.Comment {
				continue
			}
			if ok {
				t.Fatalf("unexpected event %+v", ev)
			}
			return
		default:
			return
		}
	}
}

// publish posts a JSON body with a publisher token and returns status and
// decoded reply.
func (e *env) publish(body any) (int, map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	return e.post("application/json", b, token(e.t, "producer", "publish"))
}

func (e *env) post(contentType string, body []byte, tok string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/notice", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("reply is not JSON: %q", raw)
	}
	return resp.StatusCode, out
}

func (e *env) mustPublish(user, event, data string) string {
	e.t.Helper()
	code, out := e.publish(map[string]any{"user": user, "event": event, "data": data})
	if code != http.StatusOK {
		e.t.Fatalf("publish: %d %v", code, out)
	}
	return out["id"].(string)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
