// Package browser serves noticed.js, the browser module, and its
// TypeScript declarations.
package browser

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"

	"github.com/go-chi/chi/v5"
)

var (
	//go:embed noticed.js
	script []byte
	//go:embed noticed.d.ts
	types []byte
)

// Mount serves /noticed.js and /noticed.d.ts on r.
func Mount(r chi.Router) {
	r.Get("/noticed.js", file(script, "text/javascript; charset=utf-8"))
	r.Get("/noticed.d.ts", file(types, "application/typescript; charset=utf-8"))
}

// file serves body with an ETag, so a browser revalidates it cheaply and
// never runs an old copy after an upgrade.
func file(body []byte, contentType string) http.HandlerFunc {
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// A module script from another origin is fetched in CORS mode; it
		// is public, so any page may import it. For the origins of
		// -cors-origins the CORS middleware has already answered.
		if h.Get("Access-Control-Allow-Origin") == "" {
			h.Set("Access-Control-Allow-Origin", "*")
		}
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(body)
	}
}
