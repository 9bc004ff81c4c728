package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/noticed/noticed/internal/front"
)

// Limits bound what a connection may hold without asking for anything.
type Limits struct {
	// ReadHeaderTimeout bounds the time from a connection's accept (or the
	// end of its previous request) to the end of a request head: one
	// bound, whichever path (the front door or net/http) reads the head.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no next
	// request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request head; past it the answer is 431.
	MaxHeaderBytes int
}

// Listener serves noticed's router on a TCP listener the way production
// does: the front door takes new event streams, net/http everything else.
// There is deliberately no ReadTimeout or WriteTimeout: both would cut
// open event streams, which bound their own writes; a publish body gets
// its own read deadline (Config.BodyTimeout).
type Listener struct {
	srv *http.Server
	fl  *front.Listener
}

// Listen puts the front door and an http.Server on ln. Serve runs them.
func Listen(ln net.Listener, h http.Handler, lim Limits, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.Default()
	}
	return &Listener{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			IdleTimeout:       lim.IdleTimeout,
			MaxHeaderBytes:    lim.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		fl: front.Listen(ln, front.Options{
			Path:              "/notice",
			Handler:           h,
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			MaxHeaderBytes:    lim.MaxHeaderBytes,
			Logger:            log,
		}),
	}
}

// Addr is the address listened on.
func (l *Listener) Addr() net.Addr { return l.fl.Addr() }

// Serve serves until Shutdown or Close; it returns http.ErrServerClosed
// then, or the error that stopped accepting.
func (l *Listener) Serve() error { return l.srv.Serve(l.fl) }

// Shutdown stops accepting and waits, until ctx ends, for the requests
// under way on either path. Streams taken over from either are not waited
// for: sse.Handler.Wait does that.
func (l *Listener) Shutdown(ctx context.Context) error {
	if err := l.srv.Shutdown(ctx); err != nil {
		return err
	}
	return l.fl.Wait(ctx)
}

// Close stops accepting and closes every connection net/http holds.
func (l *Listener) Close() error {
	return l.srv.Close()
}
