package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/sse"
)

// Errors of the HTTP layer; the rest come from the packages below it.
var (
	ErrForbidden   = errors.New("token lacks the publish scope")
	ErrOwnOnly     = errors.New("read state is changed only with the user's own token, without user=")
	ErrBadBody     = errors.New("bad request body")
	ErrTooLarge    = errors.New("request body too large")
	ErrTimeout     = errors.New("request body not received in time")
	ErrNotAllowed  = errors.New("method not allowed")
	ErrNotFound    = errors.New("not found")
	ErrHTTPVersion = errors.New("HTTP version not supported: send HTTP/1.1 or HTTP/1.0")
)

// status maps an error to its HTTP status: the one place that does.
func status(err error) int {
	switch {
	case auth.Refused(err):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrForeignOrigin), errors.Is(err, ErrOwnOnly):
		return http.StatusForbidden
	case errors.Is(err, ErrBadBody), errors.Is(err, sse.ErrBadLastEventID),
		errors.Is(err, sse.ErrRequestBody):
		return http.StatusBadRequest
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, ErrNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrNotSupported):
		return http.StatusNotImplemented
	case errors.Is(err, ErrHTTPVersion):
		return http.StatusHTTPVersionNotSupported
	case errors.Is(err, routing.ErrUserLimit):
		return http.StatusTooManyRequests
	case errors.Is(err, routing.ErrFull), errors.Is(err, routing.ErrClosed),
		errors.Is(err, routing.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers with err's status and {"error": "..."}. Internal
// errors are not described to the client, but for a stream the server
// cannot hand over, a fault of the deployment that says nothing secret;
// the caller logs them.
func writeError(w http.ResponseWriter, err error) {
	code := status(err)
	msg := err.Error()
	switch {
	case errors.Is(err, sse.ErrNotHijackable):
		msg = sse.ErrNotHijackable.Error()
	case code == http.StatusInternalServerError:
		msg = "internal error"
	}
	switch code {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="noticed"`)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "2")
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

// writeJSON is the one place a JSON reply or error body is written. Plain
// JSON, without encoding/json's HTML escaping: a message that quotes what
// the client sent ("<b>" as an unknown field) reads as it was sent, not as
// "\u003cb\u003e". The body is never HTML: nosniff keeps a browser from
// guessing that it is.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
