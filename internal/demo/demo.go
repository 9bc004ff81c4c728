// Package demo serves a one-page demonstration of noticed, a small inbox:
// it lists the user's history, subscribes with the browser's own
// EventSource, keeps an unread badge from the read events, marks items
// read on a click or all at once, and publishes one from a form. Dev mode
// mounts it at GET /.
package demo

import (
	_ "embed"
	"net/http"

	"github.com/go-chi/chi/v5"
)

//go:embed index.html
var page []byte

// Mount serves the demo page at GET / on r.
func Mount(r chi.Router) {
	r.Get("/", serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// The page's own URL may carry tokens (?token=, ?pub=): never send it
	// on as a Referer, where it would reach access logs.
	h.Set("Referrer-Policy", "no-referrer")
	// Inline script and style only; the page may talk to a noticed on
	// another origin (the "server" field), hence connect-src *.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src *; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.Write(page)
}
