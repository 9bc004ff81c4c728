package browser

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

func TestServe(t *testing.T) {
	r := chi.NewRouter()
	Mount(r)
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/noticed.js", "text/javascript; charset=utf-8", "export function connect("},
		{"/noticed.d.ts", "application/typescript; charset=utf-8", "export declare function connect("},
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if w.Code != 200 || w.Header().Get("Content-Type") != tc.ctype || !strings.Contains(w.Body.String(), tc.contains) {
			t.Errorf("GET %s: %d %q; want 200 %s with %q", tc.path, w.Code, w.Header().Get("Content-Type"), tc.ctype, tc.contains)
		}
		if w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("GET %s: no Access-Control-Allow-Origin: * (a module from another origin is fetched with CORS)", tc.path)
		}
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.Header.Set("If-None-Match", w.Header().Get("ETag"))
		w = httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d; want 304", tc.path, w.Code)
		}
	}
}
