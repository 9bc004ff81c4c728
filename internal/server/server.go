// Package server is noticed's HTTP face: routes, authentication, the
// publish endpoint, health and metrics.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/cors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/browser"
	"github.com/noticed/noticed/internal/metrics"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/sse"
)

// Config is everything the HTTP layer serves from.
type Config struct {
	Verifier *auth.Verifier
	Store    routing.Store
	// Append is what POST /notice appends with: the hub's Append, which
	// fans out what this instance appends without waiting for a read, in
	// production; nil: Store.Append.
	Append func(ctx context.Context, msgs []routing.Message) ([]notice.ID, error)
	// Presence answers GET /presence; nil: 501.
	Presence presence.Backend
	Streams  *sse.Handler
	Metrics  *metrics.Metrics
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger

	MaxPayload         int64    // bytes of a publish body; default 64 KiB
	MaxUsersPerPublish int      // default 1000
	MaxUserLen         int      // bytes of a published user id; default (and most) notice.MaxUserLen
	MaxEventLen        int      // bytes of a published event type; default (and most) notice.MaxEventLen
	CORSOrigins        []string // browser origins allowed; "*" for any
	// BodyTimeout bounds the time a publish body may take to arrive after
	// the handler starts reading it; 0 means no bound. The http.Server's
	// own ReadTimeout cannot do this: it would also cut open streams.
	BodyTimeout time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// in logs; from anyone else the header is ignored.
	TrustedProxies Proxies
	// TokenLeeway is the clock skew the verifier allows; a stream closes
	// that long after its token's exp, when a reconnect would be refused.
	TokenLeeway time.Duration
	// Extra mounts additional routes (the demo page) on the router.
	Extra func(chi.Router)
}

type server struct {
	cfg     Config
	log     *slog.Logger
	origins *originPolicy
}

// New returns the router serving every endpoint of the contract.
func New(cfg Config) http.Handler {
	if cfg.Append == nil && cfg.Store != nil {
		cfg.Append = cfg.Store.Append
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = 64 << 10
	}
	if cfg.MaxUsersPerPublish <= 0 {
		cfg.MaxUsersPerPublish = 1000
	}
	if cfg.MaxUserLen <= 0 || cfg.MaxUserLen > notice.MaxUserLen {
		cfg.MaxUserLen = notice.MaxUserLen
	}
	if cfg.MaxEventLen <= 0 || cfg.MaxEventLen > notice.MaxEventLen {
		cfg.MaxEventLen = notice.MaxEventLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.Discard()
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	s := &server{cfg: cfg, log: cfg.Logger, origins: newOriginPolicy(cfg.CORSOrigins, cfg.TrustedProxies)}

	r := chi.NewRouter()
	r.Use(s.recoverer, s.accessLog, httpVersion, closeUnread)
	if len(cfg.CORSOrigins) > 0 {
		// Credentials (the noticed_token cookie) only for origins named one
		// by one: with "*" any site could open a victim's stream with the
		// victim's cookie and read their notifications.
		anyOrigin := slices.Contains(cfg.CORSOrigins, "*")
		r.Use(cors.Handler(cors.Options{
			AllowedOrigins:   cfg.CORSOrigins,
			AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodOptions},
			AllowedHeaders:   []string{"Authorization", "Content-Type", "Last-Event-ID", "Cache-Control"},
			AllowCredentials: !anyOrigin,
			// noticed.js waits as long as a 503 says before it comes back.
			ExposedHeaders: []string{"Retry-After"},
			MaxAge:         600,
		}))
	}
	r.With(s.sameOrigin).Get("/notice", s.subscribe)
	r.With(s.sameOrigin).Post("/notice", s.publish)
	r.With(s.sameOrigin).Get("/notice/history", s.history)
	r.With(s.sameOrigin).Post("/notice/read", s.markRead)
	r.Get("/presence", s.presence)
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	browser.Mount(r)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	if cfg.Extra != nil {
		cfg.Extra(r)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: %s", ErrNotFound, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: %s %s", ErrNotAllowed, r.Method, r.URL.Path))
	})
	return r
}

// authenticate checks a request's token and counts refusals by reason.
func (s *server) authenticate(token string) (*auth.Claims, error) {
	claims, err := s.cfg.Verifier.Verify(token)
	if err != nil {
		s.cfg.Metrics.AuthRefused.WithLabelValues(auth.Reason(err)).Inc()
		return nil, err
	}
	return claims, nil
}

func (s *server) subscribe(w http.ResponseWriter, r *http.Request) {
	claims, err := s.authenticate(auth.TokenFromRequest(r))
	if err != nil {
		writeError(w, err)
		return
	}
	expires := claims.ExpiresAt
	if !expires.IsZero() {
		expires = expires.Add(s.cfg.TokenLeeway)
	}
	if err := s.cfg.Streams.Serve(w, r, claims.Subject, expires); err != nil {
		s.cfg.Metrics.StreamsRefused.WithLabelValues(refusal(err)).Inc()
		writeError(w, err)
	}
}

func refusal(err error) string {
	switch {
	case errors.Is(err, routing.ErrUserLimit):
		return "user_limit"
	case errors.Is(err, routing.ErrFull):
		return "instance_full"
	case errors.Is(err, routing.ErrClosed):
		return "shutting_down"
	case errors.Is(err, sse.ErrBadLastEventID):
		return "bad_last_event_id"
	case errors.Is(err, sse.ErrRequestBody):
		return "request_body"
	case errors.Is(err, sse.ErrNotHijackable):
		return "not_hijackable"
	}
	return "other"
}

func (s *server) publish(w http.ResponseWriter, r *http.Request) {
	// Never the cookie: a browser attaches it to a form any site can post.
	tok := auth.ExplicitToken(r)
	if _, err := r.Cookie(auth.CookieName); tok == "" && err == nil {
		s.cfg.Metrics.AuthRefused.WithLabelValues(auth.Reason(auth.ErrNoToken)).Inc()
		writeError(w, fmt.Errorf("%w: publishing takes its token from the Authorization header or the token parameter, never from the cookie", auth.ErrNoToken))
		return
	}
	claims, err := s.authenticate(tok)
	if err != nil {
		writeError(w, err)
		return
	}
	if !claims.Can("publish") {
		s.cfg.Metrics.AuthRefused.WithLabelValues("scope").Inc()
		writeError(w, ErrForbidden)
		return
	}
	if s.cfg.BodyTimeout > 0 {
		// A producer that stops sending mid-body must not hold the
		// connection and this goroutine for ever.
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)); err != nil {
			s.log.Warn("cannot bound the publish body's read time", "err", err)
		}
	}
	body, err := readBody(w, r, s.cfg.MaxPayload)
	if err != nil {
		writeError(w, err)
		return
	}
	req, err := parsePublish(body, r.Header.Get("Content-Type"), limits{
		users: s.cfg.MaxUsersPerPublish, userLen: s.cfg.MaxUserLen, eventLen: s.cfg.MaxEventLen,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	msgs := req.messages()
	ids, err := s.cfg.Append(r.Context(), msgs)
	if err != nil {
		s.cfg.Metrics.BackendErrors.WithLabelValues("append").Inc()
		s.log.Warn("publish failed", "err", err, "events", len(msgs))
		if !errors.Is(err, routing.ErrUnavailable) && r.Context().Err() == nil {
			err = fmt.Errorf("%w: %v", routing.ErrUnavailable, err)
		}
		writeError(w, err)
		return
	}
	s.cfg.Metrics.EventsPublished.Add(float64(len(ids)))
	if req.batch != nil {
		list := make([]string, len(ids))
		for i, id := range ids {
			list[i] = id.String()
		}
		writeJSON(w, http.StatusOK, map[string]any{"ids": list})
		return
	}
	if !req.many {
		writeJSON(w, http.StatusOK, map[string]string{"id": ids[0].String()})
		return
	}
	out := make(map[string]string, len(ids))
	for i, u := range req.users {
		out[u] = ids[i].String()
	}
	writeJSON(w, http.StatusOK, map[string]any{"ids": out})
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		writeError(w, fmt.Errorf("%w: %v", routing.ErrUnavailable, err))
		return
	}
	body := map[string]string{"status": "ready"}
	// With keys from JWKS URLs: "stale" while a provider is down and its
	// last good set is in use; expired keys make the instance not ready.
	if h := s.cfg.Verifier.KeysHealth(); h.Remote {
		if h.Err != nil {
			writeError(w, fmt.Errorf("%w: %v", routing.ErrUnavailable, h.Err))
			return
		}
		body["keys"] = map[bool]string{true: "fresh", false: "stale"}[h.Fresh]
	}
	writeJSON(w, http.StatusOK, body)
}

// recoverer turns a panic into a 500 and a log line instead of a dropped
// connection; http.ErrAbortHandler keeps its meaning.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "path", r.URL.Path, "panic", v)
				writeError(w, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// httpVersion refuses, on a plain connection, a request line whose
// version is neither HTTP/1.0 nor HTTP/1.1. net/http answers HTTP/2.0 and
// the like itself (in plain text) but serves HTTP/1.2 as 1.1; the front
// door parses every version. Refused here, a stream request with any
// other version never reaches the stream handler, whatever path read it.
func httpVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && (r.ProtoMajor != 1 || r.ProtoMinor > 1) {
			w.Header().Set("Connection", "close")
			writeError(w, fmt.Errorf("%w (got %s)", ErrHTTPVersion, r.Proto))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// accessLog logs each request by path only: the query string may carry a
// token, and no token may reach a log line. The client is named as
// ClientAddr finds it; peer is the TCP peer, which differs behind a proxy.
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		client := r.RemoteAddr
		if a := s.cfg.TrustedProxies.ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For")); a.IsValid() {
			client = a.String()
		}
		s.log.Debug("request",
			"method", r.Method, "path", r.URL.Path, "status", ww.Status(),
			"bytes", ww.BytesWritten(), "duration", time.Since(start), "client", client, "peer", r.RemoteAddr)
	})
}
