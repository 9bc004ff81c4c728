package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNginxConf: what deploy/nginx.conf promises besides balancing.
// Refusals come from noticed itself (its JSON errors, its 413); a stream's
// first bytes arrive at once (no buffering); per-instance metrics are not
// served from behind the balancer; no token reaches nginx's logs; the
// cookie is taken from a page of nginx's own origin (its X-Forwarded-Proto
// and -Host, believed from -trusted-proxies), and refused from another.
func TestNginxConf(t *testing.T) {
	c := newCluster(t, "-trusted-proxies", "127.0.0.1")

	big, _ := json.Marshal(map[string]any{"user": "u1", "data": strings.Repeat("x", 100<<10)})
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		header             map[string]string
		want               int
	}{
		{"body over -max-payload", http.MethodPost, "/notice", big, map[string]string{"Authorization": "Bearer " + c.pub, "Content-Type": "application/json"}, http.StatusRequestEntityTooLarge},
		{"no token", http.MethodGet, "/notice", nil, nil, http.StatusUnauthorized},
		{"bad Last-Event-ID", http.MethodGet, "/notice?token=" + url.QueryEscape(c.token("u1")), nil, map[string]string{"Last-Event-ID": "nope"}, http.StatusBadRequest},
		{"cookie from a foreign origin", http.MethodGet, "/notice", nil, map[string]string{"Cookie": "noticed_token=" + c.token("u1"), "Origin": "https://evil.example"}, http.StatusForbidden},
		{"publish without the scope", http.MethodPost, "/notice", []byte(`{"user":"u1","data":"x"}`), map[string]string{"Authorization": "Bearer " + c.token("u1"), "Content-Type": "application/json"}, http.StatusForbidden},
	} {
		req, _ := http.NewRequest(tc.method, c.url+tc.path, bytes.NewReader(tc.body))
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Error string }
		if resp.StatusCode != tc.want || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s: got %d %q; want %d with noticed's {\"error\":...}", tc.name, resp.StatusCode, body, tc.want)
		}
	}

	// The stream's headers and its retry: line come through at once; the
	// cookie of a page of nginx's own origin opens it.
	req, _ := http.NewRequest(http.MethodGet, c.url+"/notice", nil)
	req.Header.Set("Cookie", "noticed_token="+c.token("u1"))
	req.Header.Set("Origin", c.url)
	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if err != nil || !strings.HasPrefix(line, "retry: ") || time.Since(start) > 2*time.Second {
		t.Errorf("first line of a stream: %q, %v after %v; want retry: at once", line, err, time.Since(start))
	}
	for header, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache"} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("stream header %s: %q; want %q", header, got, want)
		}
	}

	resp, err = http.Get(c.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics through nginx: %d; want 404 (scrape each instance)", resp.StatusCode)
	}

	// Access log lines are written when requests end: the stream above
	// ended when its body was closed.
	log := filepath.Join(c.nginx.dir, "noticed-access.log")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = poll(ctx, func() bool {
		b, _ := os.ReadFile(log)
		return bytes.Contains(b, []byte(`"GET /notice HTTP/1.1" 200`))
	})
	if err != nil {
		t.Fatal("no stream in nginx's access log")
	}
	// No token in it: checked for every test when nginx stops.
}
