package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A stream is always taken over from the server. Where it cannot be (the
// handler embedded behind a TLS server speaking HTTP/2, or a server whose
// response writer hides Hijack), the client gets a 500 that says why, at
// once, and nothing is held.
func TestStreamThatCannotBeTakenOver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		http2 bool
	}{
		{"http2", true},
		{"writer without Hijack", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				e.handler.ServeHTTP(struct{ http.ResponseWriter }{w}, r)
			}))
			srv.EnableHTTP2 = tc.http2
			if tc.http2 {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/notice?token=" + token(t, "gus"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error string }
			derr := json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != http.StatusInternalServerError || derr != nil || !strings.Contains(body.Error, "plain HTTP/1.x") {
				t.Fatalf("got %s %d %q (%v), want 500 with a JSON error naming plain HTTP/1.x", resp.Proto, resp.StatusCode, body.Error, derr)
			}
			if tc.http2 && resp.ProtoMajor != 2 {
				t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
			}
			if n := testutil.ToFloat64(e.metrics.StreamsOpen); n != 0 {
				t.Errorf("noticed_streams_open: %v after the refusal, want 0", n)
			}
			if n := testutil.ToFloat64(e.metrics.StreamsRefused.WithLabelValues("not_hijackable")); n != 1 {
				t.Errorf(`noticed_streams_refused_total{reason="not_hijackable"}: %v, want 1`, n)
			}
		})
	}
}
