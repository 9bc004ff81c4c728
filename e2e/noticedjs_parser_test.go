package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	jsmodule "github.com/noticed/noticed/internal/browser"
)

// TestNoticedJSParser: the stream parser of noticed.js (shared mode reads
// the stream with fetch, not EventSource) against a server that writes
// the event stream in awkward pieces: CRLF, CR and LF line ends, a CRLF
// split between two writes, a field split mid-name, comments, retry:, an
// id with NUL (ignored, as the standard says), a field without a colon,
// data: lines joined with LF, and an id-only block. Then the stream ends
// and the module reconnects after retry: with lastEventId.
func TestNoticedJSParser(t *testing.T) {
	var second atomic.Value
	second.Store("")
	pieces := []string{
		"retry: 300\r\n\r\n",
		"id: 5-0\r\n\r\n", // position only
		": a comment\r",
		"\nid: 6-0\revent: order.shipped\ndata: one\r",
		"\ndata: two\r\n\r\n",
		"id: 7-0\nda", "ta: x\n",
		"data\n",            // a field without a colon: an empty data line
		"id: bad\x00id\n\n", // NUL: the id is ignored, the event keeps 7-0
		"data: {\"a\":1}\n\n",
	}
	r := chi.NewRouter()
	jsmodule.Mount(r)
	r.Get("/notice", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "text/event-stream")
		if last := r.URL.Query().Get("lastEventId"); last != "" {
			second.Store(last)
			w.Write([]byte("id: 8-0\ndata: after\n\n"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		for _, p := range pieces {
			w.Write([]byte(p))
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond) // separate reads in the browser, not an assertion
		}
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	b := startBrowser(t, modulePage)
	tab, closeTab := b.tab(url.Values{"server": {srv.URL}, "token": {"x.eyJzdWIiOiJwYXJzZXIifQ.x"}})
	defer closeTab()
	waitJS(t, tab, "the events and the reconnect", `window.got.length >= 4`)
	got := evalJS[[]browserEvent](t, tab, `window.got`)
	want := []browserEvent{
		{Type: "order.shipped", ID: "6-0", Data: "one\ntwo"},
		{Type: "message", ID: "7-0", Data: "x\n"},
		{Type: "message", ID: "7-0", Data: `{"a":1}`},
		{Type: "message", ID: "8-0", Data: "after"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events: %+v; want %+v", len(got), got, want)
	}
	for i, w := range want {
		if g := got[i]; g.Type != w.Type || g.ID != w.ID || g.Data != w.Data || g.Origin != srv.URL {
			t.Errorf("event %d: %+v; want %+v from %s", i, g, w, srv.URL)
		}
	}
	if s := second.Load().(string); s != "7-0" {
		t.Errorf("reconnected with lastEventId %q; want 7-0", s)
	}
}
