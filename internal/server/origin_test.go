package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/server"
)

// send makes a request as a browser would send it from a page of origin
// ("" for none), with the noticed_token cookie set to cookie ("" for none).
func (e *env) send(method, path, origin, cookie string, body []byte, header http.Header) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: cookie})
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && method == http.MethodGet {
		return resp.StatusCode, nil // a stream: not read here
	}
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil || out["error"] == nil && resp.StatusCode != http.StatusOK {
		e.t.Errorf("%s %s: %d %q, want a JSON body", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// A cross-site form used to publish with a visitor's publish-scoped
// cookie. Publishing never takes its token from the cookie, and a cookie
// from a foreign origin is refused outright.
func TestCookieCannotPublish(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cors: []string{"https://app.example"}})
	victim := e.subscribe("vic")
	pubCookie := token(t, "producer", "publish")
	form := []byte("user=vic&data=forged")

	tests := []struct {
		name, origin string
		want         int
	}{
		{"cross-site form", "https://evil.example", http.StatusForbidden},
		{"sandboxed page (Origin null)", "null", http.StatusForbidden},
		{"no Origin", "", http.StatusUnauthorized},
		{"own origin", e.url, http.StatusUnauthorized},
		{"allowed origin", "https://app.example", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		code, out := e.send(http.MethodPost, "/notice", tt.origin, pubCookie, form, nil)
		if code != tt.want {
			t.Errorf("%s: %d %v, want %d", tt.name, code, out, tt.want)
		}
	}
	victim.none(t)
	if n := testutil.ToFloat64(e.metrics.AuthRefused.WithLabelValues("origin")); n != 2 {
		t.Errorf(`noticed_auth_refused_total{reason="origin"} = %v, want 2`, n)
	}

	// The header still publishes, from any origin that sends no cookie.
	hdr := http.Header{"Authorization": {"Bearer " + pubCookie}}
	if code, out := e.send(http.MethodPost, "/notice", "https://app.example", "", form, hdr); code != http.StatusOK {
		t.Fatalf("publish with the header: %d %v", code, out)
	}
	if ev := victim.next(t); ev.Data != "forged" {
		t.Fatalf("got %+v", ev)
	}
}

// Any site could open a visitor's stream with the visitor's cookie (and,
// with -cors-origins listing it, read it). The cookie is taken only from
// the request's own origin and the origins named in -cors-origins.
func TestCookieStreamOrigins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cors    []string
		proxies string
		origin  string
		header  http.Header
		want    int
	}{
		{"no Origin (not a cross-origin browser request)", nil, "", "", nil, 200},
		{"own origin", nil, "", "{self}", nil, 200},
		{"own origin, other case", nil, "", "{SELF}", nil, 200},
		{"foreign origin", nil, "", "https://evil.example", nil, 403},
		{"foreign origin, token in the header too", nil, "", "https://evil.example", http.Header{"Authorization": {"Bearer {token}"}}, 403},
		{"Origin null", nil, "", "null", nil, 403},
		{"listed origin", []string{"https://app.example"}, "", "https://app.example", nil, 200},
		{"listed origin, default port given", []string{"https://app.example"}, "", "https://app.example:443", nil, 200},
		{"listed origin, other scheme", []string{"https://app.example"}, "", "http://app.example", nil, 403},
		{"wildcard origin", []string{"https://*.example.com"}, "", "https://a.example.com", nil, 200},
		{"outside the wildcard", []string{"https://*.example.com"}, "", "https://example.org", nil, 403},
		{"* allows no cookie", []string{"*", "https://app.example"}, "", "https://app.example", nil, 403},
		{"own origin behind a trusted TLS proxy", nil, "127.0.0.1", "https://noticed.example",
			http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"noticed.example"}}, 200},
		{"forwarded headers from an untrusted peer", nil, "10.9.9.9", "https://noticed.example",
			http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"noticed.example"}}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proxies, err := server.ParseProxies(tt.proxies)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, envOptions{cors: tt.cors, proxies: proxies})
			tok := token(t, "cora")
			origin := strings.NewReplacer("{self}", e.url, "{SELF}", strings.ToUpper(e.url)).Replace(tt.origin)
			hdr := http.Header{}
			for k, v := range tt.header {
				hdr[k] = []string{strings.ReplaceAll(v[0], "{token}", tok)}
			}
			code, out := e.send(http.MethodGet, "/notice", origin, tok, nil, hdr)
			if code != tt.want {
				t.Fatalf("Origin %q with the cookie: %d %v, want %d", origin, code, out, tt.want)
			}
			// Without the cookie the origin does not matter: a token in the
			// URL or a header is not sent by the browser on its own.
			q := url.Values{"token": {tok}}.Encode()
			code, out = e.send(http.MethodGet, "/notice?"+q, origin, "", nil, nil)
			if code != http.StatusOK {
				t.Fatalf("Origin %q with the token in the URL: %d %v, want 200", origin, code, out)
			}
		})
	}
}
